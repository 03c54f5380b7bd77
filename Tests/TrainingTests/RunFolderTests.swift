import Data
import Distill
import Foundation
import Models
import Tensors
import TestSupport
import Training
import XCTest

/// What a run does with a folder that already holds something, and with a resume that is not the saved run.
final class RunFolderTests: XCTestCase {
    func config(output: String) -> TrainingConfig {
        var c = TrainingConfig()
        c.model = "resnet8"
        c.dataset = "tiny"
        c.batchSize = 16
        c.steps = 8
        c.output = output
        c.logEverySteps = 1
        c.checkpointEverySteps = 4
        return c
    }

    func testAFolderHoldingARunIsRefusedWithoutResumeOrOverwrite() throws {
        let folder = try temporaryFolder(self)
        try Trainer(config: config(output: folder), splits: tinySplits()).run()
        // A finished run without checkpoints (removed to save space) is still a run.
        try FileManager.default.removeItem(atPath: folder + "/checkpoints")
        XCTAssertThrowsError(try Trainer(config: config(output: folder), splits: tinySplits()).run()) { error in
            XCTAssertTrue("\(error)".contains("already holds a run (config.yaml, metrics.jsonl, model.safetensors, summary.json); pass --resume to continue it, --overwrite to replace it"), "\(error)")
        }
        // --overwrite replaces it: metrics.jsonl holds the new run's lines only.
        try Trainer(config: config(output: folder), splits: tinySplits()).run(RunOptions(overwrite: true))
        XCTAssertEqual(try trainLines(folder).map { $0["step"] as! Int }, Array(1...8))
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
            XCTAssertTrue(text.contains("lr: null -> 0.2") && text.contains("seed: 0 -> 5"), text)
            XCTAssertTrue(text.contains("pass --allow-change seed,lr"), text)
        }
        // Paths and logging may change; an allowed change goes ahead.
        changed.seed = 0
        changed.logEverySteps = 2
        try Trainer(config: changed, splits: tinySplits()).run(RunOptions(resume: true, allowedChanges: ["lr"]))
        // Steps 7 and 8 were trained again: their first records were cut, so no step appears twice.
        let steps = try trainLines(folder).map { $0["step"] as! Int }
        XCTAssertEqual(steps, [1, 2, 3, 4, 5, 6, 8])
    }

    func testAStateThatContradictsItsFolderIsRefused() throws {
        let folder = try temporaryFolder(self)
        try Trainer(config: config(output: folder), splits: tinySplits()).run()
        let statePath = folder + "/checkpoints/step-8/state.json"
        var state = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: statePath))) as? [String: Any])
        state["step"] = 1_000_000
        try JSONSerialization.data(withJSONObject: state).write(to: URL(fileURLWithPath: statePath))
        XCTAssertThrowsError(try Trainer(config: config(output: folder), splits: tinySplits()).run(resume: true)) { error in
            XCTAssertTrue("\(error)".contains("state.json says step 1000000, but the folder is the checkpoint of step 8"), "\(error)")
        }
    }
}

final class EvaluationHardeningTests: XCTestCase {
    func testNonFiniteLogitsNeverCountAsHitsAndAreAnError() throws {
        let splits = tinySplits()
        let model = try ModelRegistry.make("resnet8", inputShape: [3, 8, 8], classes: 4, seed: 0)
        for p in model.parameters() { p.fill(.nan) }
        let totals = Evaluation.totals(model, on: splits.test, mean: splits.mean, std: splits.std, batchSize: 8)
        XCTAssertEqual(totals.correctTop1, 0)
        XCTAssertEqual(totals.correctTop5, 0)
        XCTAssertThrowsError(try Evaluation.run(model, on: splits.test, mean: splits.mean, std: splits.std, batchSize: 8, what: "nan.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("nan.safetensors gives a non-finite test loss"), "\(error)")
        }
    }

    func testModelMetadataIsValidatedWhenRead() throws {
        let folder = try temporaryFolder(self)
        let model = try ModelRegistry.make("resnet8", inputShape: [3, 8, 8], classes: 4, seed: 0)
        let good = ModelDescription(architecture: "resnet8", dataset: "tiny", classes: 4, inputShape: [3, 8, 8], mean: [0.4, 0.4, 0.4], std: [0.3, 0.3, 0.3])
        for (field, bad, message) in [
            ("mean", ModelDescription(architecture: "resnet8", dataset: "tiny", classes: 4, inputShape: [3, 8, 8], mean: [0.4], std: [0.3, 0.3, 0.3]),
             "'sfkd_mean' and 'sfkd_std' give 1 and 3 values; expected one per channel (3)"),
            ("std", ModelDescription(architecture: "resnet8", dataset: "tiny", classes: 4, inputShape: [3, 8, 8], mean: [0.4, 0.4, 0.4], std: [0.3, 0, 0.3]),
             "or a std is not positive"),
            ("classes", ModelDescription(architecture: "resnet8", dataset: "tiny", classes: 1_000_000_000, inputShape: [3, 8, 8], mean: good.mean, std: good.std),
             "'sfkd_classes' is 1000000000; expected 2 to 100000"),
            ("shape", ModelDescription(architecture: "resnet8", dataset: "tiny", classes: 4, inputShape: [3, 1_000_000_000, 8], mean: good.mean, std: good.std),
             "'sfkd_input_shape' is [3, 1000000000, 8]"),
        ] {
            let path = folder + "/\(field).safetensors"
            try ModelFile.save(model, description: bad, to: path)
            XCTAssertThrowsError(try ModelFile.open(path), field) { error in
                XCTAssertTrue("\(error)".contains(path) && "\(error)".contains(message), "\(field): \(error)")
            }
        }
    }
}
