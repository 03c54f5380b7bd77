import Foundation
import Tensors
import TestSupport
import XCTest

/// Every CIFAR-100 (224) recipe runs for two steps on the committed image folder at 128x128 and
/// batch 4, so none of them rots: the teachers are imported and fine-tuned, then each of the six
/// pairs is distilled with every method, all with the recipes' own settings otherwise.
final class RecipeTests: XCTestCase {
    func run(_ script: String, _ arguments: [String], binary: String) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let process = Process()
        process.executableURL = packageRoot.appendingPathComponent("launch/recipes/cifar100-224/\(script)")
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(["SFKD_BINARY": binary]) { $1 }
        return try runBounded(process, timeout: 900)
    }

    func testEveryCIFAR100RecipeRunsTwoSteps() throws {
        let binary = try sfkdExecutable(preferring: "release")
        let scratch = try temporaryFolder(self)
        let folder = packageRoot.appendingPathComponent("Tests/Fixtures/images/folder").path
        let small = [
            "--dataset", "folder", "--data-dir", folder, "--input-size", "128", "--batch-size", "4",
            "--eval-batch-size", "8",
        ]
        // Stand-ins for the ImageNet checkpoints: each teacher trained for a step at this size.
        let teachers = ["swin_tiny_patch4_window7_224", "vit_small_patch16_224", "convnext_tiny"]
        try FileManager.default.createDirectory(atPath: "\(scratch)/imagenet", withIntermediateDirectories: true)
        for teacher in teachers {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments =
                ["train", "--model", teacher, "--steps", "1", "--out", "\(scratch)/pre-\(teacher)"] + small
            let made = try runBounded(process, timeout: 300)
            XCTAssertEqual(made.status, 0, made.stderr)
            try FileManager.default.copyItem(
                atPath: "\(scratch)/pre-\(teacher)/model.safetensors",
                toPath: "\(scratch)/imagenet/\(teacher).safetensors")
        }
        let tuned = try run(
            "teachers",
            ["--weights-dir", "\(scratch)/imagenet", "--input", "3,128,128", "--out", "\(scratch)/runs", "--"] + small
                + ["--steps", "2"],
            binary: binary)
        XCTAssertEqual(tuned.status, 0, tuned.stderr)
        for teacher in teachers {
            XCTAssertTrue(
                FileManager.default.fileExists(atPath: "\(scratch)/runs/teacher-\(teacher)/summary.json"),
                "\(teacher) fine-tuned")
        }
        let distilled = try run(
            "distill", ["--out", "\(scratch)/runs", "--"] + small + ["--steps", "2"], binary: binary)
        XCTAssertEqual(distilled.status, 0, distilled.stderr)
        let runs = try FileManager.default.contentsOfDirectory(atPath: "\(scratch)/runs").filter {
            FileManager.default.fileExists(atPath: "\(scratch)/runs/\($0)/summary.json") && !$0.hasPrefix("teacher-")
        }
        XCTAssertEqual(runs.count, 30, "six pairs x five methods: \(runs.sorted())")
        // The recipes' settings reached the runs: OFA's ViT/MLP recipe for DeiT-T.
        let config = try String(
            contentsOfFile: "\(scratch)/runs/sfkd-convnext_tiny-deit_tiny_patch16_224/config.yaml", encoding: .utf8)
        XCTAssertTrue(
            config.contains("optimizer: adamw") && config.contains("mixup: 0.8") && config.contains("reprob: 0.25"),
            config)
        // bf16 where the CPU computes it, as OFA's --amp, and said so.
        let precision = BFloat16Arithmetic.hardware ? "bf16" : "fp32"
        XCTAssertTrue(
            config.contains("\nprecision: \(precision)") && config.contains("teacher_precision: \(precision)"), config)
        XCTAssertTrue(distilled.stderr.contains("precision: \(precision) ("), distilled.stderr)
        // A second pass finds every run finished and trains nothing.
        let again = try run("distill", ["--out", "\(scratch)/runs", "--"] + small + ["--steps", "2"], binary: binary)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertFalse(again.stderr.contains("+ "), "finished runs are kept")
    }
}
