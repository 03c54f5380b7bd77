import Data
import Distill
import Foundation
import ModelFiles
import Models
import Settings
import Tensors
import TestSupport
import Training
import XCTest

/// What a run does with a folder that already holds something, and with a resume that is not the saved run.
final class RunFolderTests: XCTestCase {
    func config(output: String) -> TrainingConfig { tinyConfig("resnet8", output: output) }

    func testAFolderHoldingARunIsRefusedWithoutResumeOrOverwrite() throws {
        let folder = try temporaryFolder(self)
        try Trainer(config: config(output: folder), splits: tinySplits()).run()
        // A finished run without checkpoints (removed to save space) is still a run.
        try FileManager.default.removeItem(atPath: folder + "/checkpoints")
        XCTAssertThrowsError(try Trainer(config: config(output: folder), splits: tinySplits()).run()) { error in
            XCTAssertTrue(
                "\(error)".contains(
                    "already holds a run (config.yaml, metrics.jsonl, summary.csv, model.safetensors, summary.json, events.out.tfevents."
                ), "\(error)")
            XCTAssertTrue("\(error)".contains("); pass --resume to continue it, --overwrite to replace it"), "\(error)")
        }
        // --overwrite replaces it: metrics.jsonl holds the new run's lines only, one event file is left.
        try Trainer(config: config(output: folder), splits: tinySplits()).run(RunOptions(overwrite: true))
        XCTAssertEqual(try trainLines(folder).map(\.step), Array(1...8))
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix("events.out.tfevents.") }
                .count, 1)
    }

    func testASecondWriterIsRefusedNamingTheHolder() throws {
        let folder = try temporaryFolder(self)
        // Another process's lock, as a running sfkd holds it.
        let descriptor = open(folder + "/.lock", O_RDWR | O_CREAT, 0o644)
        XCTAssertEqual(flock(descriptor, LOCK_EX | LOCK_NB), 0)
        _ = "pid 4242 on elsewhere\n".withCString { write(descriptor, $0, strlen($0)) }
        defer { close(descriptor) }
        XCTAssertThrowsError(try Trainer(config: config(output: folder), splits: tinySplits()).run()) { error in
            XCTAssertTrue("\(error)".contains("is in use by another run (pid 4242 on elsewhere)"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/config.yaml"))
    }

    func testResumeRefusesChangedSettingsUnlessAllowedAndCutsTheMetricsBack() throws {
        let folder = try temporaryFolder(self)
        try Trainer(config: config(output: folder), splits: tinySplits()).run()
        try FileManager.default.removeItem(atPath: folder + "/checkpoints/step-8")
        var changed = config(output: folder)
        changed.learningRate = 0.2
        changed.seed = 5
        XCTAssertThrowsError(try Trainer(config: changed, splits: tinySplits()).run(resume: true)) { error in
            let text = "\(error)"
            // config.yaml records the learning rate the CNN recipe chose.
            XCTAssertTrue(text.contains("lr: 0.05 -> 0.2") && text.contains("seed: 0 -> 5"), text)
            XCTAssertTrue(text.contains("pass --allow-change seed,lr"), text)
        }
        // Paths and logging may change; an allowed change goes ahead.
        changed.seed = 0
        changed.logEverySteps = 2
        try Trainer(config: changed, splits: tinySplits()).run(RunOptions(resume: true, allowedChanges: ["lr"]))
        // Steps 7 and 8 were trained again: their first records were cut, so no step appears twice.
        let steps = try trainLines(folder).map(\.step)
        XCTAssertEqual(steps, [1, 2, 3, 4, 5, 6, 8])
    }

    func testAStateThatContradictsItsFolderIsRefused() throws {
        let folder = try temporaryFolder(self)
        try Trainer(config: config(output: folder), splits: tinySplits()).run()
        let statePath = folder + "/checkpoints/step-8/state.json"
        var state = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: statePath))) as? [String: Any])
        state["step"] = 1_000_000
        try JSONSerialization.data(withJSONObject: state).write(to: URL(fileURLWithPath: statePath))
        XCTAssertThrowsError(try Trainer(config: config(output: folder), splits: tinySplits()).run(resume: true)) {
            error in
            XCTAssertTrue(
                "\(error)".contains("state.json says step 1000000, but the folder is the checkpoint of step 8"),
                "\(error)")
        }
    }
}

/// `--init FILE [--reset-head]`: fine-tuning from a model file.
final class WeightInitializationTests: XCTestCase {
    func testARunStartsFromTheFileAndAnotherClassCountNeedsResetHead() throws {
        let folder = try temporaryFolder(self)
        let source = try ModelRegistry.make("resnet8", inputShape: [3, 8, 8], classes: 5, seed: 42)
        try ModelFile.save(
            source,
            description: ModelDescription(
                architecture: "resnet8", dataset: "other", classes: 5, inputShape: [3, 8, 8],
                mean: [0.4, 0.4, 0.4], std: [0.3, 0.3, 0.3]), to: folder + "/five.safetensors")
        func tensor(_ model: any ImageClassifier, _ name: String) -> [Float] {
            model.stateDict().first { $0.0 == name }!.1.array
        }
        var c = TrainingConfig()
        c.model = "resnet8"
        c.dataset = "tiny"
        c.steps = 1
        c.batchSize = 16
        c.output = folder + "/run"
        c.initialization = folder + "/five.safetensors"
        // The tiny dataset has 4 classes, the file's head 5.
        XCTAssertThrowsError(try Trainer(config: c, splits: tinySplits())) { error in
            XCTAssertTrue(
                "\(error)".contains("fc.weight: file [5, 64], model [4, 64] (another class count: pass --reset-head"),
                "\(error)")
        }
        c.resetHead = true
        let trainer = try Trainer(config: c, splits: tinySplits())
        XCTAssertEqual(
            tensor(trainer.model, "conv1.weight"), tensor(source, "conv1.weight"), "the body starts from the file")
        XCTAssertEqual(tensor(trainer.model, "layer3.0.bn2.running_var"), tensor(source, "layer3.0.bn2.running_var"))
        let fresh = try ModelRegistry.make("resnet8", inputShape: [3, 8, 8], classes: 4, seed: 0)
        XCTAssertEqual(
            tensor(trainer.model, "fc.weight"), tensor(fresh, "fc.weight"), "the head keeps its fresh initialisation")
        // Another architecture is refused.
        c.model = "resnet20"
        XCTAssertThrowsError(try Trainer(config: c, splits: tinySplits())) { error in
            XCTAssertTrue("\(error)".contains("holds resnet8; this run trains resnet20"), "\(error)")
        }
    }
}

final class EvaluationHardeningTests: XCTestCase {
    func testNonFiniteLogitsNeverCountAsHitsAndAreAnError() throws {
        let splits = tinySplits()
        let model = try ModelRegistry.make("resnet8", inputShape: [3, 8, 8], classes: 4, seed: 0)
        for p in model.parameters() { p.fill(.nan) }
        let totals = try Evaluation.totals(model, on: splits.test, mean: splits.mean, std: splits.std, batchSize: 8)
        XCTAssertEqual(totals.correctTop1, 0)
        XCTAssertEqual(totals.correctTop5, 0)
        XCTAssertThrowsError(
            try Evaluation.run(
                model, on: splits.test, mean: splits.mean, std: splits.std, batchSize: 8, what: "nan.safetensors")
        ) { error in
            XCTAssertTrue("\(error)".contains("nan.safetensors gives a non-finite test loss"), "\(error)")
        }
    }

    func testModelMetadataIsValidatedWhenRead() throws {
        let folder = try temporaryFolder(self)
        let model = try ModelRegistry.make("resnet8", inputShape: [3, 8, 8], classes: 4, seed: 0)
        let good = ModelDescription(
            architecture: "resnet8", dataset: "tiny", classes: 4, inputShape: [3, 8, 8], mean: [0.4, 0.4, 0.4],
            std: [0.3, 0.3, 0.3])
        for (field, bad, message) in [
            (
                "mean",
                ModelDescription(
                    architecture: "resnet8", dataset: "tiny", classes: 4, inputShape: [3, 8, 8], mean: [0.4],
                    std: [0.3, 0.3, 0.3]),
                "'sfkd_mean' and 'sfkd_std' give 1 and 3 values; expected one per channel (3)"
            ),
            (
                "std",
                ModelDescription(
                    architecture: "resnet8", dataset: "tiny", classes: 4, inputShape: [3, 8, 8], mean: [0.4, 0.4, 0.4],
                    std: [0.3, 0, 0.3]),
                "or a std is not positive"
            ),
            (
                "classes",
                ModelDescription(
                    architecture: "resnet8", dataset: "tiny", classes: 1_000_000_000, inputShape: [3, 8, 8],
                    mean: good.mean, std: good.std),
                "'sfkd_classes' is 1000000000; expected 2 to 100000"
            ),
            (
                "shape",
                ModelDescription(
                    architecture: "resnet8", dataset: "tiny", classes: 4, inputShape: [3, 1_000_000_000, 8],
                    mean: good.mean, std: good.std),
                "'sfkd_input_shape' is [3, 1000000000, 8]"
            ),
        ] {
            let path = folder + "/\(field).safetensors"
            try ModelFile.save(model, description: bad, to: path)
            XCTAssertThrowsError(try ModelFile.open(path), field) { error in
                XCTAssertTrue("\(error)".contains(path) && "\(error)".contains(message), "\(field): \(error)")
            }
        }
    }
}

/// Corrupted safetensors files: truncations, flipped header bytes, and sizes and offsets that
/// overflow, go negative or overlap. Only clear errors may come out (also on the release build).
final class SafeTensorsHardeningTests: XCTestCase {
    func file(header: String, dataBytes: Int) -> Data {
        var json = Data(header.utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var length = UInt64(json.count).littleEndian
        return Data(bytes: &length, count: 8) + json + Data(repeating: 0, count: dataBytes)
    }

    func expectClearError(_ data: Data, _ what: String, contains message: String? = nil, folder: String) throws {
        let path = folder + "/t.safetensors"
        try data.write(to: URL(fileURLWithPath: path))
        do {
            let contents = try SafeTensors.read(path)
            // Accepted: it must then be consistent (every tensor inside the file).
            XCTAssertNil(message, "\(what): accepted")
            XCTAssertLessThanOrEqual(contents.tensors.values.reduce(0) { $0 + $1.count * 4 }, data.count, what)
        } catch let error as UserError {
            if let message { XCTAssertTrue(error.description.contains(message), "\(what): \(error)") }
        } catch {
            XCTFail("\(what): not a clear error: \(error)")
        }
    }

    func testCorruptFilesGiveClearErrors() throws {
        let folder = try temporaryFolder(self)
        try SafeTensors.write(
            [("a", Tensor([1, 2, 3, 4], shape: [2, 2])), ("b", Tensor([5], shape: [1]))], metadata: ["k": "v"],
            to: folder + "/valid.safetensors")
        let valid = try Data(contentsOf: URL(fileURLWithPath: folder + "/valid.safetensors"))
        let headerEnd = 8 + Int(valid[0])
        for cut in 0..<headerEnd + 9 { try expectClearError(valid.prefix(cut), "truncated at \(cut)", folder: folder) }
        for index in 0..<headerEnd {
            var flipped = valid
            flipped[index] ^= 0xFF
            try expectClearError(flipped, "byte \(index) flipped", folder: folder)
        }
        let cases: [(String, String, Int, String)] = [
            (
                "offsets that overflow",
                #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[9223372036854775804,9223372036854775807]}}"#, 16,
                "do not fit the 16 data bytes"
            ),
            (
                "a negative dimension", #"{"a":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]}}"#, 16,
                "negative or impossibly large size"
            ),
            (
                "a shape that wraps", #"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}"#,
                16, "negative or impossibly large size"
            ),
            (
                "overlapping tensors",
                #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                16, "overlap"
            ),
            ("offsets backwards", #"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, 16, "do not fit"),
            ("a header length beyond the file", "{}", 0, ""),
        ]
        for (what, header, dataBytes, message) in cases.dropLast() {
            try expectClearError(file(header: header, dataBytes: dataBytes), what, contains: message, folder: folder)
        }
        var huge = file(header: "{}", dataBytes: 0)
        huge.replaceSubrange(0..<8, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        try expectClearError(huge, "a header length beyond the file", contains: "exceeds the file", folder: folder)
    }
}
