import Foundation
import ModelFiles
import Tensors
import TestSupport
import Training
import XCTest

/// `--precision bf16` and `--teacher-precision bf16` in whole runs: one trajectory on any rank
/// count, exact resume, float32 checkpoints, teacher ranks that give what the inline teacher
/// gives.
final class BFloat16TrainingTests: XCTestCase {
    var runs: TrainingRuns!

    override func setUpWithError() throws { runs = try TrainingRuns() }
    override func tearDown() { runs = nil }

    /// Rank counts change only the order of float32 additions; at bf16 such a difference
    /// occasionally moves a value across a rounding boundary (a 2^-8 relative step in one
    /// input), so the runs agree to 1e-3 rather than float32's 1e-4 over 20 steps.
    func testBF16FollowsOneTrajectoryOnOneTwoAndFourRanks() throws {
        let common = ["--model", "vit-tiny", "--steps", "20", "--batch-size", "32", "--precision", "bf16"]
        let one = try runs.train(1, "one", common)
        let two = try runs.train(2, "two", common)
        let four = try runs.train(4, "four", common)
        try runs.assertSameParameters(one, two, tolerance: 1e-3, "bf16 on 2 ranks")
        try runs.assertSameParameters(one, four, tolerance: 1e-3, "bf16 on 4 ranks")
        try runs.assertSameLosses(one, four, tolerance: 1e-3, "bf16 on 4 ranks")
        // bf16 is really on: the float32 run differs, by bf16's rounding (a few per mille of the loss).
        let float32 = try runs.train(1, "fp32", Array(common.dropLast(2)))
        let a = try runs.trainLosses(one), b = try runs.trainLosses(float32)
        XCTAssertNotEqual(a, b)
        for (x, y) in zip(a, b) { XCTAssertLessThan(abs(x - y), 0.02 * abs(y), "bf16 \(a) against fp32 \(b)") }
    }

    /// A bf16 run checkpoints float32 weights and resumes bit for bit; switching precision at
    /// resume is a change of trajectory, refused unless allowed.
    func testBF16ResumesExactlyAndChangesPrecisionOnlyWhenAllowed() throws {
        let common = [
            "--model", "vit-tiny", "--steps", "20", "--batch-size", "16", "--checkpoint-every", "10", "--precision",
            "bf16", "--teacher-precision", "bf16",
        ]
        let uninterrupted = try runs.train(1, "uninterrupted", common)
        let header = try String(contentsOfFile: uninterrupted + "/model.safetensors", encoding: .isoLatin1)
            .prefix(4096)
        XCTAssertTrue(header.contains("\"F32\"") && !header.contains("BF16"), "model files stay float32")
        let config = try String(contentsOfFile: uninterrupted + "/config.yaml", encoding: .utf8)
        XCTAssertTrue(config.contains("precision: bf16"), config)

        func interruptedCopy(_ name: String) throws -> String {
            let copy = runs.scratch.appendingPathComponent(name).path
            try FileManager.default.copyItem(atPath: uninterrupted, toPath: copy)
            for leftover in ["checkpoints/step-20", "model.safetensors", "summary.json"] {
                try FileManager.default.removeItem(atPath: copy + "/" + leftover)
            }
            return copy
        }
        let resumed = try interruptedCopy("resumed")
        let result = try mpirun(1, ["train", "--out", resumed, "--resume"], timeout: 300, release: true)
        XCTAssertEqual(result.status, 0, result.stderr)
        try runs.assertSameParameters(uninterrupted, resumed, tolerance: 0, "bf16 resumed")

        let switched = try interruptedCopy("switched")
        let refused = try mpirun(
            1, ["train", "--out", switched, "--resume", "--precision", "fp32"], timeout: 300, release: true)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("precision: bf16 -> fp32"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("--allow-change precision"), refused.stderr)
        let allowed = try mpirun(
            1, ["train", "--out", switched, "--resume", "--precision", "fp32", "--allow-change", "precision"],
            timeout: 300, release: true)
        XCTAssertEqual(allowed.status, 0, allowed.stderr)
        XCTAssertTrue(allowed.stderr.contains("the student's products round differently"), allowed.stderr)
    }

    /// A bf16 teacher on its own rank hands the students exactly what the inline bf16 teacher
    /// gives, for a logit method and a feature method.
    func testABF16TeacherGivesTheSameLossesOnItsOwnRank() throws {
        let teacher =
            try runs.train(1, "teacher", ["--model", "resnet8", "--steps", "3", "--batch-size", "16"])
            + "/model.safetensors"
        let common = [
            "--model", "vit-tiny", "--teacher", teacher, "--steps", "4", "--batch-size", "16", "--teacher-precision",
            "bf16",
        ]
        for method in ["kd", "sfkd"] {
            let inline = try runs.train(1, "\(method)-inline", common + ["--method", method])
            let offloaded = try runs.train(
                2, "\(method)-offloaded", common + ["--method", method, "--teacher-ranks", "1"])
            XCTAssertEqual(try runs.trainLosses(inline), try runs.trainLosses(offloaded), method)
            let float32 = try runs.train(1, "\(method)-fp32", Array(common.dropLast(2)) + ["--method", method])
            XCTAssertNotEqual(try runs.trainLosses(inline), try runs.trainLosses(float32), "\(method): bf16 is on")
        }
    }
}
