import Data
import Foundation
import Tensors
import TestSupport
import Training
import XCTest

/// The validation split, the best epoch chosen on it, and the logs people read with their
/// tools: summary.csv, TensorBoard event files (read back with the project's reader, CRCs
/// checked, and with TensorBoard's own where it is installed), the run record.
final class ResearchWorkflowTests: XCTestCase {
    func config(output: String) -> TrainingConfig {
        var c = tinyConfig("resnet8", output: output)
        c.steps = 24
        c.logEverySteps = 2
        c.checkpointEverySteps = 8
        c.seed = 3
        c.valSplit = 24
        c.keepCheckpoints = 10
        return c
    }

    func testTheValidationSplitIsStratifiedSeededAndDisjoint() throws {
        let labels: [Int32] = (0..<1000).map { Int32($0 % 7 == 0 ? 3 : $0 % 3) }
        let (train, validation) = ValidationSplit.indices(labels: labels, classes: 4, count: 100, seed: 5)
        XCTAssertEqual(validation.count, 100)
        XCTAssertEqual(Set(train).union(validation), Set(0..<1000))
        XCTAssertTrue(Set(train).isDisjoint(with: validation))
        XCTAssertEqual(validation, validation.sorted())
        // Each class keeps its share (largest remainders rounded up).
        for c in 0..<4 {
            let share = Double(labels.filter { $0 == Int32(c) }.count) / 10
            let held = validation.filter { labels[$0] == Int32(c) }.count
            XCTAssertLessThanOrEqual(Swift.abs(Double(held) - share), 1, "class \(c)")
        }
        XCTAssertEqual(ValidationSplit.indices(labels: labels, classes: 4, count: 100, seed: 5).validation, validation)
        XCTAssertNotEqual(
            ValidationSplit.indices(labels: labels, classes: 4, count: 100, seed: 6).validation, validation)
        XCTAssertEqual(try ValidationSplit.count(for: 0.1, trainCount: 1000, classes: 4), 100)
        XCTAssertThrowsError(try ValidationSplit.count(for: 998, trainCount: 1000, classes: 4)) {
            XCTAssertTrue("\($0)".contains("val_split"), "\($0)")
        }
        XCTAssertThrowsError(try ValidationSplit.count(for: 12.5, trainCount: 1000, classes: 4))
        // A subset holds exactly those images.
        let splits = tinySplits()
        let subset = splits.train.subset([5, 2])
        let size = 3 * 8 * 8
        XCTAssertEqual(subset.labels, [splits.train.labels[5], splits.train.labels[2]])
        XCTAssertEqual(Array(subset.pixels[0..<size]), Array(splits.train.pixels[(5 * size)..<(6 * size)]))
    }

    /// summary.json and metrics.jsonl read as their types (JSONDecoder reads every number back
    /// bit for bit; Foundation's JSONSerialization on Linux can miss the last bit).
    func summary(_ folder: String) throws -> RunSummary {
        try JSONDecoder().decode(
            RunSummary.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/summary.json")))
    }

    func records(_ folder: String, kind: MetricsRecord.Kind) throws -> [MetricsRecord] {
        try MetricsRecord.read(folder + "/metrics.jsonl").filter { $0.kind == kind }
    }

    func eventFiles(_ folder: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix("events.out.tfevents.") }
            .sorted().map { "\(folder)/\($0)" }
    }

    func testTheBestEpochIsChosenOnValidationAndEveryLogReadsBack() throws {
        let folder = try temporaryFolder(self)
        try Trainer(config: config(output: folder), splits: tinySplits()).run()
        let evals = try records(folder, kind: .eval)
        XCTAssertEqual(evals.count, 24 / (72 / 16))
        let summary = try summary(folder)
        XCTAssertEqual(summary.trainImages, 72)
        XCTAssertEqual(summary.valImages, 24)
        XCTAssertEqual(summary.testImages, 40)
        XCTAssertEqual(summary.seed, 3)
        XCTAssertEqual(summary.configHash.count, 16)
        XCTAssertTrue(summary.version.hasPrefix(RunRecord.release))
        // The best epoch: the first of the highest validation top-1, never looking at test.
        let valTop1 = evals.map { $0["val_top1"]! }
        let bestIndex = valTop1.firstIndex(of: valTop1.max()!)!
        let best = try XCTUnwrap(summary.best)
        XCTAssertEqual(best.epoch, evals[bestIndex].epoch)
        XCTAssertEqual(best.testTop1, evals[bestIndex]["test_top1"])
        XCTAssertEqual(summary.valTop1, valTop1.last)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/best.safetensors"))

        // summary.csv: timm's columns, a row per epoch, eval_* on validation in percent.
        let csv = try String(contentsOfFile: folder + "/summary.csv", encoding: .utf8).split(separator: "\n").map {
            $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        }
        XCTAssertEqual(
            csv[0],
            [
                "epoch", "train_loss", "train_loss_ce", "eval_loss", "eval_top1", "eval_top5", "test_loss", "test_top1",
                "test_top5", "lr",
            ])
        XCTAssertEqual(csv.count, evals.count + 1)
        for (row, record) in zip(csv.dropFirst(), evals) {
            func cell(_ name: String) -> Double { Double(row[csv[0].firstIndex(of: name)!]) ?? .nan }
            XCTAssertEqual(Int(row[0]), record.epoch)
            XCTAssertEqual(cell("train_loss"), record["train_loss"])
            XCTAssertEqual(cell("train_loss_ce"), record["train_loss_ce"])
            XCTAssertEqual(cell("eval_loss"), record["val_loss"])
            XCTAssertEqual(cell("eval_top1"), 100 * record["val_top1"]!)
            XCTAssertEqual(cell("test_top5"), 100 * record["test_top5"]!)
            XCTAssertEqual(cell("lr"), record["lr"])
        }

        // TensorBoard: one file, its version first, then every metrics record's numbers.
        let files = try eventFiles(folder)
        XCTAssertEqual(files.count, 1)
        let events = try TensorBoardEventFile.read(files[0])
        XCTAssertEqual(events.first?.fileVersion, "brain.Event:2")
        let scalars = events.flatMap { event in event.scalars.map { (event.step, $0.tag, $0.value) } }
        let trainLoss = scalars.filter { $0.1 == "train/loss" }
        let trains = try records(folder, kind: .train)
        XCTAssertEqual(trainLoss.map(\.0), trains.map(\.step))
        XCTAssertEqual(trainLoss.map(\.2), trains.map { Float($0["loss"]!) })
        XCTAssertEqual(scalars.filter { $0.1 == "eval/val_top1" }.map(\.2), valTop1.map(Float.init))
        for tag in [
            "train/lr", "train/images_per_sec", "train/data_wait_seconds", "train/backward_seconds",
            "train/optimizer_seconds", "eval/test_top1",
        ] {
            XCTAssertTrue(scalars.contains { $0.1 == tag }, tag)
        }

        // TensorBoard's own reader, where it is installed, sees the same scalars.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            """
            import sys
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
            accumulator = EventAccumulator(sys.argv[1]); accumulator.Reload()
            print(" ".join(repr(e.value) for e in accumulator.Scalars("train/loss")))
            """, folder,
        ]
        let result = try runBounded(process, timeout: 120)
        if result.status == 0 {
            XCTAssertEqual(
                result.stdout.split(separator: " ").compactMap {
                    Float($0.trimmingCharacters(in: .whitespacesAndNewlines))
                }, trainLoss.map(\.2))
        } else {
            XCTAssertTrue(result.stderr.contains("No module named"), result.stderr)
            print(
                "ResearchWorkflowTests: TensorBoard is not installed (pip install tensorboard); read back with sfkd's reader only"
            )
        }
    }

    func testAResumedRunKeepsItsBestAndTellsTensorBoardToDropTheReplayedSteps() throws {
        let straight = try temporaryFolder(self), interrupted = try temporaryFolder(self)
        try Trainer(config: config(output: straight), splits: tinySplits()).run()
        try Trainer(config: config(output: interrupted), splits: tinySplits()).run()
        for step in [20, 24] { try FileManager.default.removeItem(atPath: interrupted + "/checkpoints/step-\(step)") }
        try FileManager.default.removeItem(atPath: interrupted + "/summary.json")
        let first = try eventFiles(interrupted)
        try Trainer(config: config(output: interrupted), splits: tinySplits()).run(resume: true)
        let a = try summary(straight), b = try summary(interrupted)
        XCTAssertEqual(a.best, b.best)
        XCTAssertEqual(
            try String(contentsOfFile: straight + "/summary.csv", encoding: .utf8),
            try String(contentsOfFile: interrupted + "/summary.csv", encoding: .utf8))
        let added = try eventFiles(interrupted).filter { !first.contains($0) }
        XCTAssertEqual(added.count, 1)
        let events = try TensorBoardEventFile.read(added[0])
        XCTAssertTrue(events[1].sessionStart)
        XCTAssertEqual(events[1].step, 16)
    }

    /// Every number of a metrics line reads back to the same double, bit for bit (0.1 + 0.2
    /// is one that Foundation's JSONSerialization on Linux reads back one bit off).
    func testMetricsRecordsReadBackBitForBit() throws {
        var generator = RandomGenerator(seed: 11)
        var record = MetricsRecord(
            kind: .train, step: 7, epoch: 1,
            values: ["sum": 0.1 + 0.2, "tiny": 5e-324, "whole": 2, "big": 1.7976931348623157e308])
        for i in 0..<2000 {
            record["v\(i)"] = Double(bitPattern: generator.next() >> 2 | 0x3000_0000_0000_0000) * (i % 2 == 0 ? 1 : -1)
        }
        let text = try record.line() + Data("\n".utf8) + record.line()
        let back = try MetricsRecord.records(text, file: "metrics.jsonl")
        XCTAssertEqual(back.count, 2)
        for name in record.values.keys { XCTAssertEqual(back[1][name]?.bitPattern, record[name]!.bitPattern, name) }
        XCTAssertEqual(back[0], record)
        XCTAssertThrowsError(try MetricsRecord.records(Data("{\"kind\":\"train\",\"step\":1}\n".utf8), file: "m.jsonl"))
        {
            XCTAssertTrue(
                "\($0)".contains("m.jsonl: line 1 is not a metrics record (field 'epoch' is missing)"), "\($0)")
        }
    }

    /// A summary.json of an earlier sfkd (before the run record) still reads, for sweeps that reuse old runs.
    func testAnOlderSummaryStillDecodes() throws {
        let old =
            #"{"epochs": 1, "images_per_sec": 120.5, "model": "vit-tiny", "dataset": "fashion-mnist", "method": "kd", "parameters": 546186, "ranks": 1, "steps": 468, "student_ranks": 1, "teacher_ranks": 0, "test_loss": 0.61, "test_top1": 0.7545, "test_top5": 0.99, "threads": 1, "wall_seconds": 600}"#
        let summary = try JSONDecoder().decode(RunSummary.self, from: Data(old.utf8))
        XCTAssertEqual(summary.testTop1, 0.7545)
        XCTAssertNil(summary.best)
        XCTAssertNil(summary.valTop1)
        XCTAssertEqual(summary.configHash, "")
        XCTAssertThrowsError(try JSONDecoder().decode(RunSummary.self, from: Data(#"{"model": "x"}"#.utf8)))
    }

    func testEventFramingDetectsDamage() throws {
        // CRC-32C's check value, and TensorFlow's masking.
        XCTAssertEqual(TFRecord.crc32c(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(TFRecord.masked(0), 0xA282_EAD8)
        let event = TensorBoardEvent(wallTime: 1.5, step: 7, scalars: [("train/loss", 0.25), ("eval/val_top1", 0.75)])
        let record = TFRecord.frame(event.encoded())
        XCTAssertEqual(try TFRecord.records(record, file: "f").map { try TensorBoardEvent(decoding: $0) }, [event])
        for index in [0, 9, 14, record.count - 1] {
            var damaged = record
            damaged[index] ^= 0x10
            XCTAssertThrowsError(try TFRecord.records(damaged, file: "f"), "byte \(index)") {
                XCTAssertTrue("\($0)".contains("f: record at byte 0"), "\($0)")
            }
        }
        XCTAssertThrowsError(try TFRecord.records(Array(record.dropLast(3)), file: "f"))
        // A length far past the file is refused before anything is allocated.
        var huge = [UInt8](repeating: 0xFF, count: 8)
        huge[7] = 0x7F
        let crc = TFRecord.masked(TFRecord.crc32c(huge))
        huge += (0..<4).map { UInt8(truncatingIfNeeded: crc >> (8 * UInt32($0))) } + [0, 0, 0, 0]
        XCTAssertThrowsError(try TFRecord.records(huge, file: "f")) {
            XCTAssertTrue("\($0)".contains("more than the file holds"), "\($0)")
        }
    }
}
