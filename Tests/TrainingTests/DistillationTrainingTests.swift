import Data
import Distill
import Foundation
import ModelFiles
import Models
import Tensors
import TestSupport
import Training
import XCTest

final class DistillationTrainingTests: XCTestCase {
    func teacherFile() throws -> String {
        let folder = try temporaryFolder(self)
        var c = TrainingConfig()
        c.model = "resnet8"
        c.dataset = "tiny"
        c.batchSize = 16
        c.steps = 3
        c.output = folder
        try Trainer(config: c, splits: tinySplits()).run()
        return folder + "/model.safetensors"
    }

    func distillConfig(_ method: String, teacher: String, output: String) -> TrainingConfig {
        var c = tinyConfig("vit-tiny", output: output)
        c.teacher = teacher
        c.method = method
        return c
    }

    /// The resume check and config_hash cover the selected method's settings only: a KD run
    /// resumes after an SFKD setting changed (and keeps its hash); an SFKD run refuses it.
    func testOnlyTheSelectedMethodsSettingsAreTrajectorySettings() throws {
        let teacher = try teacherFile()
        for (method, refused) in [("kd", false), ("sfkd", true)] {
            let folder = try temporaryFolder(self)
            let first = try XCTUnwrap(
                try Trainer(config: distillConfig(method, teacher: teacher, output: folder), splits: tinySplits()).run()
            )
            try FileManager.default.removeItem(atPath: folder + "/summary.json")
            var changed = distillConfig(method, teacher: teacher, output: folder)
            try changed.set("dwt_levels", to: "1", source: "test")
            // The hash is of the settings as the run used them (the student's recipe filled in).
            let used = try TrainingSetup(config: changed, splits: tinySplits()).config
            XCTAssertEqual(RunRecord.configHash(used) == first.configHash, !refused, method)
            if refused {
                XCTAssertThrowsError(try Trainer(config: changed, splits: tinySplits()).run(resume: true)) {
                    XCTAssertTrue("\($0)".contains("dwt_levels: 2 -> 1"), "\($0)")
                }
            } else {
                XCTAssertNoThrow(try Trainer(config: changed, splits: tinySplits()).run(resume: true))
            }
        }
    }

    func testSFKDResumeReproducesTheUninterruptedRun() throws {
        let teacher = try teacherFile()
        let straight = try temporaryFolder(self), interrupted = try temporaryFolder(self)
        try Trainer(config: distillConfig("sfkd", teacher: teacher, output: straight), splits: tinySplits()).run()
        try Trainer(config: distillConfig("sfkd", teacher: teacher, output: interrupted), splits: tinySplits()).run()
        try FileManager.default.removeItem(atPath: interrupted + "/checkpoints/step-6")
        try FileManager.default.removeItem(atPath: interrupted + "/checkpoints/step-8")
        try Trainer(config: distillConfig("sfkd", teacher: teacher, output: interrupted), splits: tinySplits()).run(
            resume: true)
        XCTAssertEqual(
            try trainLines(straight).suffix(4).map { $0["loss"]! },
            try trainLines(interrupted).suffix(4).map { $0["loss"]! })
        // Each term of the SFKD loss is logged (no logit term by default), and the distance before DS2S.
        let last = try XCTUnwrap(try trainLines(straight).last)
        for term in ["loss_ce", "loss_wavelet0", "loss_frequency1", "loss_raw1"] { XCTAssertNotNil(last[term], term) }
        XCTAssertNil(last["loss_kd"])
        // The student alone goes into model.safetensors; the DS2S and aligner weights only into checkpoints.
        let model = try SafeTensors.read(straight + "/model.safetensors")
        XCTAssertFalse(model.names.contains { $0.hasPrefix("aux.") })
        let optimizer = try SafeTensors.read(straight + "/checkpoints/step-8/optimizer.safetensors")
        XCTAssertTrue(optimizer.names.contains("aux.ds2s.0.embed.weight"))
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: straight + "/model.safetensors")),
            try Data(contentsOf: URL(fileURLWithPath: interrupted + "/model.safetensors")))
    }

    func testTeacherProblemsAreRefusedBeforeTraining() throws {
        let teacher = try teacherFile()
        let folder = try temporaryFolder(self)
        var noTeacher = distillConfig("kd", teacher: teacher, output: folder + "/a")
        noTeacher.teacher = nil
        XCTAssertThrowsError(try Trainer(config: noTeacher, splits: tinySplits())) { error in
            XCTAssertTrue("\(error)".contains("method 'kd' needs a teacher: pass --teacher"), "\(error)")
        }
        XCTAssertThrowsError(
            try Trainer(
                config: distillConfig("kd", teacher: folder + "/missing.safetensors", output: folder + "/b"),
                splits: tinySplits())
        ) { error in
            XCTAssertTrue("\(error)".contains("missing.safetensors not found"), "\(error)")
        }
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: folder + "/corrupt.safetensors"))
        XCTAssertThrowsError(
            try Trainer(
                config: distillConfig("kd", teacher: folder + "/corrupt.safetensors", output: folder + "/c"),
                splits: tinySplits())
        ) { error in
            XCTAssertTrue("\(error)".contains("corrupt.safetensors"), "\(error)")
        }
        var otherDataset = distillConfig("kd", teacher: teacher, output: folder + "/d")
        otherDataset.dataset = "synthetic"
        XCTAssertThrowsError(try Trainer(config: otherDataset)) { error in
            XCTAssertTrue("\(error)".contains("was trained on 'tiny'; this run uses 'synthetic'"), "\(error)")
        }
        var badStage = distillConfig("fitnet", teacher: teacher, output: folder + "/e")
        badStage.distillation[SharedSettings.stages] = [7]
        XCTAssertThrowsError(try Trainer(config: badStage, splits: tinySplits())) { error in
            XCTAssertTrue("\(error)".contains("--kd-stages 7 is out of range"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/e"))
    }
}
