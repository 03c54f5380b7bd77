import Foundation
import TestSupport
import Training
import XCTest

/// `launch/sfkd-mpirun` and `cluster/emulate-hosts`, run as a user would.
final class LauncherTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Runs a repository script, bounded in time, without this test process's MPI environment.
    func script(
        _ path: String, _ arguments: [String], timeout: TimeInterval = 240, environment extra: [String: String] = [:],
        whileRunning: ((Process) -> Void)? = nil
    ) throws -> (status: Int32, stderr: String, stdout: String) {
        let process = Process()
        process.executableURL = root.appendingPathComponent(path)
        process.arguments = arguments
        process.currentDirectoryURL = root
        var environment = environmentWithoutMPI()
        environment["SFKD_BINARY"] = try sfkdExecutable(preferring: "release")
        environment.merge(extra) { $1 }
        process.environment = environment
        let result = try runBounded(process, timeout: timeout, whileRunning: whileRunning)
        return (result.status, result.stderr, result.stdout)
    }

    /// The demo's table shows each run's own test top-1 from its summary.json, read by key
    /// path: a student's summary also holds its teacher's scores, and those come first.
    func testTheDemoTableShowsEachRunsOwnScores() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("sfkd-demo-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let runs = [
            ("teacher-resnet20", 0.8777, nil), ("vit-tiny-sfkd", 0.8126, 0.8777), ("vit-tiny-alone", 0.7532, nil),
        ]
        for (name, top1, teacher) in runs {
            // As sfkd writes summary.json: sorted keys, so "teacher" (with its own test_top1) comes first.
            var summary: [String: Any] = [
                "model": name, "test_top1": top1, "wall_seconds": 527.0, "images_per_sec": 116.0,
            ]
            if let teacher { summary["teacher"] = ["model": "resnet20", "test_top1": teacher] }
            try FileManager.default.createDirectory(
                at: out.appendingPathComponent(name), withIntermediateDirectories: true)
            try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys, .prettyPrinted]).write(
                to: out.appendingPathComponent(name + "/summary.json"))
        }
        let result = try script("launch/demo", ["--table-only", "--out", out.path], timeout: 60)
        XCTAssertEqual(result.status, 0, result.stderr)
        let rows = result.stdout.split(separator: "\n").filter { $0.hasPrefix("| ") && !$0.hasPrefix("| model") }
        XCTAssertEqual(rows.count, 3, result.stdout)
        for (row, run) in zip(rows, runs) {
            XCTAssertTrue(row.contains(String(format: "%.2f%%", 100 * run.1)), "\(run.0): \(row)")
        }
    }

    func testLauncherBindsRanksUnlessThatOversubscribesAndSelectsTCP() throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let fits = try script(
            "launch/sfkd-mpirun", ["-n", "1", "--threads", "\(cores)", "--tcp", "--dry-run", "--", "info"])
        XCTAssertEqual(fits.status, 0, fits.stderr)
        XCTAssertTrue(fits.stderr.contains("--map-by slot:PE=\(cores) --bind-to core"), fits.stderr)
        XCTAssertTrue(fits.stderr.contains("--mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include lo"), fits.stderr)
        XCTAssertTrue(
            fits.stderr.contains("-x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE"),
            "exports the kernel choice: \(fits.stderr)")
        XCTAssertEqual(fits.stderr.contains("--allow-run-as-root"), getuid() == 0)
        let crowded = try script("launch/sfkd-mpirun", ["-n", "\(cores + 1)", "--dry-run", "--", "info"])
        XCTAssertTrue(crowded.stderr.contains("--oversubscribe --bind-to none"), crowded.stderr)
        let bad = try script("launch/sfkd-mpirun", ["-n", "zero", "--", "info"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("-n needs a positive number of ranks, found 'zero'"), bad.stderr)
    }

    /// The Slurm batch script outside Slurm: its variables set by hand and `scontrol` a stand-in
    /// that records its arguments. SIGUSR1 to the script (Slurm's `--signal=B:USR1@90`) reaches
    /// the ranks through mpirun; the run checkpoints, the script requeues the job, and the
    /// requeued job (SLURM_RESTART_COUNT=1) resumes and finishes.
    func testTheSlurmScriptForwardsSIGUSR1RequeuesTheJobAndTheRequeuedJobResumes() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("sfkd-slurm-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let bin = scratch.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let calls = scratch.appendingPathComponent("scontrol.calls").path
        let scontrol = bin.appendingPathComponent("scontrol").path
        try "#!/bin/sh\necho \"$@\" >> \(calls)\n".write(toFile: scontrol, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: scontrol)
        let out = scratch.appendingPathComponent("run").path
        let slurm = [
            "SLURM_NTASKS": "2", "SLURM_JOB_ID": "4242", "SLURM_CPUS_PER_TASK": "1", "SLURM_SUBMIT_DIR": root.path,
            "PATH": bin.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
        ]
        let arguments = [
            "--model", "vit-tiny", "--dataset", "synthetic", "--steps", "30", "--batch-size", "32", "--log-every", "1",
            "--out", out,
        ]
        let first = try script("cluster/slurm-train.sbatch", arguments, environment: slurm) { process in
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline,
                ((try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)) ?? "").split(separator: "\n")
                    .count < 4
            {
                Thread.sleep(forTimeInterval: 0.2)
            }
            kill(process.processIdentifier, SIGUSR1)
        }
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(
            first.stderr.contains("slurm-train: SIGUSR1: asking the ranks to checkpoint and stop"), first.stderr)
        XCTAssertTrue(first.stderr.contains("requeueing job 4242 to continue with --resume"), first.stderr)
        XCTAssertEqual(try String(contentsOfFile: calls, encoding: .utf8), "requeue 4242\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/summary.json"))
        let requeued = try script(
            "cluster/slurm-train.sbatch", arguments, environment: slurm.merging(["SLURM_RESTART_COUNT": "1"]) { $1 })
        XCTAssertEqual(requeued.status, 0, requeued.stderr)
        XCTAssertTrue(requeued.stderr.contains("restart 1 of job 4242: continuing with --resume"), requeued.stderr)
        XCTAssertTrue(requeued.stderr.contains("resuming from \(out)/checkpoints/step-"), requeued.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/summary.json"))
        XCTAssertEqual(
            try String(contentsOfFile: calls, encoding: .utf8), "requeue 4242\n", "a finished job is not requeued")
        // An mpirun that cannot start the binary is a message (as root too), not a traceback.
        let broken = try script(
            "cluster/slurm-train.sbatch", arguments, environment: slurm.merging(["SFKD_BINARY": "/bin/false"]) { $1 })
        XCTAssertEqual(broken.status, 1)
        XCTAssertTrue(broken.stderr.contains("slurm-train: mpirun -n 2 could not run /bin/false info"), broken.stderr)
        XCTAssertFalse(broken.stderr.contains("Traceback"), broken.stderr)
    }

    /// Elastic recovery: rank 1 dies by SIGKILL after step 12 (`SFKD_FAIL_AT`, as a lost node
    /// ends it); the supervisor restarts the job from the step-10 checkpoint, and it ends with
    /// the weights of a 2-rank run that never failed, bit for bit. The failure (rank, signal,
    /// step resumed from) is in restarts.jsonl and summary.json. An error of the run's own is
    /// not restarted.
    func testTheSupervisorRestartsAKilledRankAndEndsWithTheUninterruptedWeights() throws {
        let runs = try TrainingRuns()
        let arguments = ["--model", "vit-tiny", "--steps", "24", "--batch-size", "32", "--checkpoint-every", "10"]
        let whole = try runs.train(2, "whole", arguments)
        let out = runs.scratch.appendingPathComponent("supervised").path
        let result = try script(
            "launch/sfkd-mpirun",
            ["-n", "2", "--max-restarts", "2", "--", "train", "--dataset", "synthetic", "--threads", "1", "--out", out]
                + arguments, timeout: 300, environment: ["SFKD_FAIL_AT": "1:12"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("restart 1 of 2 from step 10"), result.stderr)
        try runs.assertSameParameters(whole, out, tolerance: 0, "restarted after rank 1 was killed")
        let restarts = try RestartRecord.read(folder: out)
        XCTAssertEqual(restarts.count, 1)
        XCTAssertEqual(restarts.first?.failedRank, 1)
        XCTAssertEqual(restarts.first?.signal, 9)
        XCTAssertEqual(restarts.first?.resumedFromStep, 10)
        let summary = try JSONDecoder().decode(
            RunSummary.self, from: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json")))
        XCTAssertEqual(summary.restarts, restarts)

        let mistaken = try script(
            "launch/sfkd-mpirun",
            ["-n", "2", "--max-restarts", "2", "--", "train", "--model", "no-such-model", "--out", out + "-bad"])
        XCTAssertNotEqual(mistaken.status, 0)
        XCTAssertFalse(mistaken.stderr.contains("restart 1"), mistaken.stderr)
    }

    /// A teacher rank that dies is recovered like a student rank: the job restarts with its
    /// teacher rank and ends with the uninterrupted run's weights. A failure that comes back in
    /// every attempt uses up the restarts and ends the job non-zero, saying where to resume.
    func testATeacherRankFailureRecoversAndRestartsRunOut() throws {
        let runs = try TrainingRuns()
        let teacher =
            try runs.train(1, "teacher", ["--model", "resnet8", "--steps", "3", "--batch-size", "16"])
            + "/model.safetensors"
        let arguments = [
            "--model", "vit-tiny", "--teacher", teacher, "--method", "kd", "--teacher-ranks", "1", "--steps", "16",
            "--batch-size", "16", "--checkpoint-every", "5",
        ]
        let whole = try runs.train(3, "whole", arguments)
        let out = runs.scratch.appendingPathComponent("supervised").path
        let supervised = ["-n", "3", "--max-restarts", "2", "--", "train", "--dataset", "synthetic", "--threads", "1"]
        let result = try script(
            "launch/sfkd-mpirun", supervised + ["--out", out] + arguments, timeout: 300,
            environment: ["SFKD_FAIL_AT": "2:8"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("restart 1 of 2 from step 5"), result.stderr)
        try runs.assertSameParameters(whole, out, tolerance: 0, "restarted after the teacher rank was killed")
        XCTAssertEqual(try RestartRecord.read(folder: out).first?.failedRank, 2)

        let exhausted = runs.scratch.appendingPathComponent("exhausted").path
        let failing = try script(
            "launch/sfkd-mpirun", supervised + ["--out", exhausted] + arguments, timeout: 300,
            environment: ["SFKD_FAIL_AT": "0:7:3"])
        XCTAssertNotEqual(failing.status, 0)
        XCTAssertTrue(failing.stderr.contains("used all 2 restarts; giving up"), failing.stderr)
        XCTAssertTrue(
            failing.stderr.contains("continue later with --resume from step 5 of \(exhausted)"), failing.stderr)
        XCTAssertEqual(try RestartRecord.read(folder: exhausted).map(\.failedRank), [0, 0])
    }

    /// Four emulated hosts; host 4 is torn down after step 12. The supervisor finds it gone,
    /// restarts on the three left with two student ranks (32 images do not split over three)
    /// from the step-10 checkpoint, and the job ends with the weights of a run that never
    /// failed. Asking for at least four ranks instead ends the job with the reason.
    func testALostHostIsDroppedAndTheJobFinishesOnFewerRanks() throws {
        let runs = try TrainingRuns()
        let run = ["--model", "vit-tiny", "--steps", "24", "--batch-size", "32", "--checkpoint-every", "5"]
        let whole = try runs.train(1, "whole", run)
        // A vanished host is detected by its closed connections, else by the watchdog's 30 s.
        let arguments = run + ["--dataset", "synthetic", "--log-every", "1", "--comm-timeout", "30"]
        func lose(host: Int, minimum: Int, keep: String) throws -> (status: Int32, stderr: String) {
            let result = try script(
                "cluster/emulate-hosts",
                [
                    "--hosts", "4", "--supervise", "--max-restarts 2 --min-ranks \(minimum)", "--fail-host", "\(host)",
                    "--fail-after-step", "12", "--keep-output", keep, "--",
                ] + arguments, timeout: 400, environment: ["SFKD_EMULATE_TIMEOUT": "300"])
            if result.status == 77 { throw XCTSkip("cluster/emulate-hosts cannot run here: \(result.stderr)") }
            return (result.status, result.stderr)
        }
        let kept = runs.scratch.appendingPathComponent("elastic").path
        let shrunk = try lose(host: 4, minimum: 2, keep: kept)
        XCTAssertEqual(shrunk.status, 0, shrunk.stderr)
        XCTAssertTrue(shrunk.stderr.contains("no longer answer; restarting on 2 ranks"), shrunk.stderr)
        try runs.assertSameParameters(whole, kept, tolerance: 1e-4, "finished on 2 of 4 hosts")
        let record = try XCTUnwrap(RestartRecord.read(folder: kept).first)
        XCTAssertEqual(record.droppedHosts?.count, 1)
        XCTAssertTrue(record.droppedHosts?.first?.hasSuffix("node4") == true, "\(record)")
        XCTAssertEqual(record.restartedRanks, 2)
        XCTAssertEqual(record.resumedFromStep, 10)

        let refused = try lose(host: 2, minimum: 4, keep: runs.scratch.appendingPathComponent("refused").path)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("hold no student rank count of at least 4"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("continue later with --resume from step 10"), refused.stderr)
        // Nothing is left behind.
        let namespaces = try String(decoding: Process.output("/usr/sbin/ip", ["netns", "list"]), as: UTF8.self)
        XCTAssertFalse(namespaces.contains("sfkd-"), namespaces)
    }

    func testLauncherTrainsOnTwoRanksOverTCP() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("sfkd-launch-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try script(
            "launch/sfkd-mpirun",
            [
                "-n", "2", "--tcp", "--", "train", "--model", "resnet8", "--dataset", "synthetic",
                "--steps", "4", "--batch-size", "16", "--out", out,
            ])
        XCTAssertEqual(result.status, 0, result.stderr)
        let summary =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json")))
            as? [String: Any]
        XCTAssertEqual(summary?["ranks"] as? Int, 2)
    }

    func emulate(_ options: [String], hosts: Int) throws {
        let result = try script(
            "cluster/emulate-hosts",
            ["--hosts", "\(hosts)"] + options + [
                "--", "--model", "resnet8", "--dataset", "synthetic",
                "--steps", "4", "--batch-size", "16",
            ],
            environment: ["SFKD_EMULATE_TIMEOUT": "150"])
        if result.status == 77 {
            print("skipped: \(result.stderr)")
            throw XCTSkip("cluster/emulate-hosts cannot run here: \(result.stderr)")
        }
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("\(hosts) student ranks"), result.stderr)
        XCTAssertTrue(result.stderr.contains("training across the \(hosts) emulated nodes finished"), result.stderr)
        if hosts > ProcessInfo.processInfo.activeProcessorCount {
            XCTAssertTrue(result.stderr.contains("oversubscribed"), result.stderr)
        }
        // Nothing is left behind.
        let namespaces = try String(decoding: Process.output("/usr/sbin/ip", ["netns", "list"]), as: UTF8.self)
        XCTAssertFalse(namespaces.contains("sfkd-"), namespaces)
        let links = try String(decoding: Process.output("/usr/sbin/ip", ["link"]), as: UTF8.self)
        XCTAssertFalse(links.contains("sfkd-"), links)
    }

    func testTrainingAcrossTwoEmulatedHostsAndTeardown() throws {
        try emulate(["--rate", "1gbit"], hosts: 2)
    }

    func testTrainingAcrossFourEmulatedHosts() throws {
        try emulate(["--rate", "10gbit"], hosts: 4)
    }

    /// A benchmark across emulated hosts, its JSON on stdout; the projection checked against it
    /// and against the ring formula by hand.
    func testABenchmarkAcrossEmulatedHostsAndTheProjection() throws {
        let result = try script(
            "cluster/emulate-hosts",
            [
                "--hosts", "2", "--rate", "1gbit", "--", "bench", "step", "--model", "resnet8",
                "--batch-size", "16", "--steps", "2", "--rounds", "1", "--json",
            ],
            environment: ["SFKD_EMULATE_TIMEOUT": "150"])
        if result.status == 77 { throw XCTSkip("cluster/emulate-hosts cannot run here: \(result.stderr)") }
        XCTAssertEqual(result.status, 0, result.stderr)
        let run = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], result.stdout)
        XCTAssertEqual(run["ranks"] as? Int, 2)
        let scratch = try temporaryFolder(self)
        try result.stdout.write(toFile: "\(scratch)/run.json", atomically: true, encoding: .utf8)
        // One node: 10 ms steps, 4 ms of backward, one 1 MiB bucket. At 8 Gbit/s (1 ns per byte)
        // and no latency, a 2-node ring allreduce of it takes 2 (p-1)/p n beta = 1.048576 ms,
        // exposed in full: backward finishes the only bucket at its end.
        let step =
            #"{"model": "m", "median_step_ms": 10, "gradient_bytes": 1048576, "phases": {"forward": 5, "teacher": 0, "loss": 0.5, "backward": 4, "reduce": 0, "optimizer": 0.5}}"#
        try step.write(toFile: "\(scratch)/step.json", atomically: true, encoding: .utf8)
        let projection = try script(
            "launch/bench/project",
            ["--step", "\(scratch)/step.json", "--rate", "8gbit", "--alpha-us", "0", "--nodes", "2,4", "--json"])
        XCTAssertEqual(projection.status, 0, projection.stderr)
        let rows = try XCTUnwrap(
            (try JSONSerialization.jsonObject(with: Data(projection.stdout.utf8)) as? [String: Any])?["projection"]
                as? [[String: Any]])
        XCTAssertEqual(rows[0]["ring_no_overlap_exposed_ms"] as? Double ?? 0, 1.048576, accuracy: 1e-3)
        XCTAssertEqual(rows[0]["ring_overlap_step_ms"] as? Double ?? 0, 11.048576, accuracy: 1e-3)
        XCTAssertEqual(rows[1]["rabenseifner_no_overlap_exposed_ms"] as? Double ?? 0, 1.5 * 1.048576, accuracy: 1e-3)
        // zero1: half of the ring (the reduce-scatter) after backward, the other half (the
        // all-gather) after the update, which runs on 1/p of the parameters: 10 - 0.5/2 + 1.048576.
        let zero1 = try script(
            "launch/bench/project",
            [
                "--step", "\(scratch)/step.json", "--rate", "8gbit", "--alpha-us", "0", "--nodes", "2", "--hook",
                "zero1", "--json",
            ])
        let zero1Rows = try XCTUnwrap(
            (try JSONSerialization.jsonObject(with: Data(zero1.stdout.utf8)) as? [String: Any])?["projection"]
                as? [[String: Any]], zero1.stderr)
        XCTAssertEqual(zero1Rows[0]["ring_overlap_step_ms"] as? Double ?? 0, 10 - 0.25 + 1.048576, accuracy: 1e-3)
        // Measured readiness: the 8 MiB parameter (last in the arena, first in backward) is final
        // half-way through backward, so its bucket runs 2 ms -> 10.39 ms; the 1 MiB one is final
        // at the end (4 ms) and runs after it, to 11.44 ms: 7.44 ms exposed.
        let ready =
            #"{"model": "m", "median_step_ms": 10, "gradient_bytes": 9437184, "phases": {"forward": 5, "teacher": 0, "loss": 0.5, "backward": 4, "reduce": 0, "optimizer": 0.5}, "gradient_ready": [{"bytes": 1048576, "backward_fraction": 1.0}, {"bytes": 8388608, "backward_fraction": 0.5}]}"#
        try ready.write(toFile: "\(scratch)/ready.json", atomically: true, encoding: .utf8)
        let measured = try script(
            "launch/bench/project",
            ["--step", "\(scratch)/ready.json", "--rate", "8gbit", "--alpha-us", "0", "--nodes", "2", "--json"])
        let measuredRows = try XCTUnwrap(
            (try JSONSerialization.jsonObject(with: Data(measured.stdout.utf8)) as? [String: Any])?["projection"]
                as? [[String: Any]], measured.stderr)
        XCTAssertEqual(measuredRows[0]["ring_overlap_exposed_ms"] as? Double ?? 0, 11.437184 - 4, accuracy: 1e-3)
        // What crossed the emulated links.
        let sent = try XCTUnwrap(result.stderr.firstMatch(of: #/bytes sent per node: (\d+) (\d+)/#), result.stderr)
        XCTAssertGreaterThan(Int(sent.1)!, 0)
        XCTAssertGreaterThan(Int(sent.2)!, 0)
        // Against the measured run: a prediction and its error for each file.
        let check = try script(
            "launch/bench/project",
            ["--step", "\(scratch)/step.json", "--rate", "1gbit", "--measured", "\(scratch)/run.json"])
        XCTAssertEqual(check.status, 0, check.stderr)
        XCTAssertTrue(check.stdout.contains("mean absolute error"), check.stdout)
    }

    /// Delays need the kernel's netem qdisc; where it is missing the script says so and skips.
    func testDelayedLinksOrAClearSkip() throws {
        try emulate(["--rate", "10gbit", "--delay", "50us"], hosts: 2)
    }
}
