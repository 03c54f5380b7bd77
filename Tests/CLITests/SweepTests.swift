import Foundation
import TestSupport
import XCTest

/// `sfkd sweep` over a tiny grid (a prepared teacher, two methods, two seeds, two runs at a
/// time), its reuse of finished runs, and `launch/report` drawing the sweep and a run.
final class SweepTests: XCTestCase {
    func json(_ path: String) throws -> [String: Any] {
        try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    /// SIGTERM to the sweep (a job's time limit, a kill) reaches the run in progress, which
    /// checkpoints and stops; the sweep starts nothing more and exits 75, leaving no orphan.
    func testAStopSignalReachesTheRunInProgressAndLeavesNoOrphan() throws {
        let scratch = try temporaryFolder(self)
        let file = "\(scratch)/long.yaml"
        try """
        name: long
        base: {model: resnet8, dataset: synthetic, steps: 100000, batch_size: 8, log_every: 1}
        grid:
          lr: [0.01, 0.02]
        seeds: [0]
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let out = "\(scratch)/sweep"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try sfkdExecutable(preferring: "release"))
        process.arguments = ["sweep", file, "--out", out, "--threads", "1"]
        process.environment = environmentWithoutMPI()
        let result = try runBounded(process, timeout: 120) { sweep in
            // Once the first run has logged a step, stop the sweep as a job's time limit would.
            let deadline = Date().addingTimeInterval(90)
            while Date() < deadline {
                let logs = (try? FileManager.default.contentsOfDirectory(atPath: "\(out)/logs")) ?? []
                let text = logs.compactMap { try? String(contentsOfFile: "\(out)/logs/\($0)", encoding: .utf8) }
                if text.contains(where: { $0.contains("step 2/") || $0.contains("\"step\":2") }) { break }
                if text.contains(where: { $0.contains("loss") }) { break }
                usleep(100_000)
            }
            kill(sweep.processIdentifier, SIGTERM)
        }
        XCTAssertEqual(result.status, 75, result.stderr)
        XCTAssertTrue(result.stderr.contains("sweep stopped by SIGTERM"), result.stderr)
        XCTAssertTrue(result.stderr.contains("stopped (exit 75)"), result.stderr)
        XCTAssertFalse(result.stderr.contains("[2/2] lr-0.02_seed-0: training"), "no new run starts: \(result.stderr)")
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: "\(out)/runs/lr-0.01_seed-0/checkpoints")
        XCTAssertFalse(checkpoints.isEmpty, "the stopped run wrote its checkpoint")
        // No training process of this sweep is left running.
        let orphans = try FileManager.default.contentsOfDirectory(atPath: "/proc").filter { entry in
            guard Int(entry) != nil,
                let command = try? String(contentsOfFile: "/proc/\(entry)/cmdline", encoding: .utf8)
            else { return false }
            return command.contains(scratch)
        }
        XCTAssertEqual(orphans, [], "runs left behind")
    }

    func testASweepTrainsTheGridReusesFinishedRunsAndReportsMeansOverSeeds() throws {
        let scratch = try temporaryFolder(self)
        let folder = packageRoot.appendingPathComponent("Tests/Fixtures/images/folder").path
        let file = "\(scratch)/tiny.yaml"
        try """
        name: tiny
        prepare:
          teacher: {model: resnet8, dataset: folder, data_dir: \(folder), input_size: 16, steps: 2, batch_size: 6, val_split: 3, val_seed: 0}
        base:
          model: resnet8
          dataset: folder
          data_dir: \(folder)
          input_size: 16
          steps: 2
          batch_size: 6
          eval_batch_size: 6
          log_every: 1
          val_split: 3
          val_seed: 0
          teacher: "{prepare.teacher}"
        grid:
          method: [none, kd]
        variants:
          plain: {}
          smoothed: {label_smoothing: 0.1}
        seeds: [0, 1]
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let out = "\(scratch)/sweep"
        let first = try runSFKD(["sweep", file, "--out", out, "--parallel", "2", "--threads", "2"], timeout: 600)
        XCTAssertEqual(first.status, 0, first.stderr)
        let results = try json("\(out)/results.json")
        XCTAssertEqual(results["axes"] as? [String], ["variant", "method", "seed"])
        let runs = try XCTUnwrap(results["runs"] as? [[String: Any]])
        XCTAssertEqual(runs.count, 8)
        XCTAssertTrue(runs.allSatisfy { $0["outcome"] as? String == "trained" }, "\(runs.map { $0["outcome"] ?? "" })")
        let groups = try XCTUnwrap(results["groups"] as? [[String: Any]])
        XCTAssertEqual(groups.count, 4)
        // Each group's mean and standard deviation are those of its two runs' summaries.
        for group in groups {
            let settings = try XCTUnwrap(group["settings"] as? [String: String])
            let name = "variant-\(settings["variant"]!)_method-\(settings["method"]!)"
            let tops = try [0, 1].map { seed in
                try XCTUnwrap(
                    (try json("\(out)/runs/\(name)_seed-\(seed)/summary.json")["best"] as? [String: Any])?["test_top1"]
                        as? Double)
            }
            let statistic = try XCTUnwrap(group["best_test_top1"] as? [String: Any])
            let mean = (tops[0] + tops[1]) / 2
            XCTAssertEqual(statistic["mean"] as? Double ?? -1, mean, accuracy: 1e-12)
            XCTAssertEqual(
                statistic["std"] as? Double ?? -1, Swift.abs(tops[0] - tops[1]) / 2.0.squareRoot(), accuracy: 1e-12)
            XCTAssertEqual(group["seeds"] as? Int, 2)
        }
        // The method setting reached the runs; the teacher was trained once, before them.
        let kdRun = try json("\(out)/runs/variant-plain_method-kd_seed-0/summary.json")
        XCTAssertEqual(kdRun["method"] as? String, "kd")
        XCTAssertGreaterThan(kdRun["helper_parameters"] as? Int ?? -1, -1)
        XCTAssertNotNil(kdRun["teacher"] as? [String: Any], "the teacher is scored before training")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/prepare/teacher/model.safetensors"))
        let table = try String(contentsOfFile: "\(out)/results.md", encoding: .utf8)
        XCTAssertTrue(table.contains("| variant | method | seeds |"), table)
        XCTAssertTrue(table.contains(" ± "), table)

        // Again: every run is reused, nothing trains.
        let modified =
            try FileManager.default.attributesOfItem(
                atPath: "\(out)/runs/variant-plain_method-kd_seed-0/model.safetensors")[.modificationDate] as? Date
        let second = try runSFKD(["sweep", file, "--out", out, "--parallel", "2", "--threads", "2"], timeout: 300)
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertEqual(second.stderr.components(separatedBy: "finished before, reused").count - 1, 9, second.stderr)
        XCTAssertEqual(
            try FileManager.default.attributesOfItem(
                atPath: "\(out)/runs/variant-plain_method-kd_seed-0/model.safetensors")[.modificationDate] as? Date,
            modified)

        // A typo fails before anything trains.
        try "grid: {methd: [kd]}\n".write(toFile: "\(scratch)/typo.yaml", atomically: true, encoding: .utf8)
        let typo = try runSFKD(["sweep", "\(scratch)/typo.yaml", "--out", "\(scratch)/typo"], timeout: 60)
        XCTAssertNotEqual(typo.status, 0)
        XCTAssertTrue(typo.stderr.contains("grid key 'methd' is not a sfkd train key"), typo.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(scratch)/typo/runs"))

        // launch/report draws the sweep, one run and a step benchmark's JSON, and its page holds their numbers.
        let bench = try runSFKD(
            ["bench", "step", "--model", "resnet8", "--steps", "1", "--warmup", "0", "--batch-size", "4", "--json"],
            timeout: 120)
        XCTAssertEqual(bench.status, 0, bench.stderr)
        try bench.stdout.write(toFile: "\(scratch)/bench.json", atomically: true, encoding: .utf8)
        let benchImages = try XCTUnwrap(try json("\(scratch)/bench.json")["images_per_sec"] as? Double)
        // When each gradient became final: every trainable tensor, the output layer's before the stem's.
        let ready = try XCTUnwrap(try json("\(scratch)/bench.json")["gradient_ready"] as? [[String: Any]])
        XCTAssertEqual(
            ready.reduce(0) { $0 + ($1["bytes"] as? Int ?? 0) },
            try json("\(scratch)/bench.json")["gradient_bytes"] as? Int)
        let fractions = ready.compactMap { $0["backward_fraction"] as? Double }
        XCTAssertEqual(fractions.count, ready.count)
        XCTAssertTrue(fractions.allSatisfy { (0...1).contains($0) }, "\(fractions)")
        XCTAssertLessThan(fractions.last!, fractions.first!, "backward finishes the last layer first: \(fractions)")
        let project = Process()
        project.executableURL = packageRoot.appendingPathComponent("launch/bench/project")
        project.arguments = ["--step", "\(scratch)/bench.json", "--rate", "10gbit", "--nodes", "2,8,64", "--json"]
        let projected = try runBounded(project, timeout: 60)
        XCTAssertEqual(projected.status, 0, projected.stderr)
        try projected.stdout.write(toFile: "\(scratch)/projection.json", atomically: true, encoding: .utf8)
        let report = Process()
        report.executableURL = packageRoot.appendingPathComponent("launch/report")
        report.arguments = [
            out, "\(out)/runs/variant-plain_method-kd_seed-0", "\(scratch)/bench.json", "\(scratch)/projection.json",
            "--out", "\(scratch)/report",
        ]
        let drawn = try runBounded(report, timeout: 300)
        if drawn.stderr.contains("matplotlib is missing") {
            throw XCTSkip("matplotlib is not installed (launch/install-deps installs it)")
        }
        XCTAssertEqual(drawn.status, 0, drawn.stderr)
        for figure in [
            "tiny-comparison.png", "variant-plain_method-kd_seed-0-losses.png",
            "variant-plain_method-kd_seed-0-accuracy.png", "scaling.png", "projection.png",
        ] {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(scratch)/report/\(figure)"))
            XCTAssertEqual(Array(bytes.prefix(4)), [0x89, 0x50, 0x4E, 0x47], figure)
        }
        let page = try String(contentsOfFile: "\(scratch)/report/report.md", encoding: .utf8)
        for figure in [
            "tiny-comparison.png", "variant-plain_method-kd_seed-0-losses.png",
            "variant-plain_method-kd_seed-0-accuracy.png", "scaling.png", "projection.png",
        ] {
            XCTAssertTrue(page.contains("](\(figure))"), figure)
        }
        XCTAssertTrue(page.contains("| resnet8 | 1 | \(String(format: "%.0f", benchImages)) |"), page)
        XCTAssertTrue(page.contains("| resnet8 |  | allreduce | 10gbit | "), "the projection's row: \(page)")
        let kdBest = try XCTUnwrap((kdRun["best"] as? [String: Any])?["test_top1"] as? Double)
        XCTAssertTrue(page.contains(String(format: "%.2f", 100 * kdBest)), page)
        let kdGroup = try XCTUnwrap(
            groups.first { ($0["settings"] as? [String: String]) == ["variant": "plain", "method": "kd"] })
        let kdMean = try XCTUnwrap((kdGroup["best_test_top1"] as? [String: Any])?["mean"] as? Double)
        XCTAssertTrue(page.contains(String(format: "%.2f", 100 * kdMean)), page)
    }
}
