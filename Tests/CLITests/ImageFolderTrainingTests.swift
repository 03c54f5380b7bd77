import Foundation
import ModelFiles
import TestSupport
import Training
import XCTest

/// `sfkd train` and `sfkd eval` on an image folder (the committed fixture): class names in the
/// run folder and the model file, bad files stopping the run or counted when skipped.
final class ImageFolderTrainingTests: XCTestCase {
    let folder = packageRoot.appendingPathComponent("Tests/Fixtures/images/folder").path

    func train(_ dataDirectory: String, out: String, extra: [String] = []) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        try runSFKD(
            [
                "train", "--model", "resnet8", "--dataset", "folder", "--data-dir", dataDirectory, "--input-size", "16",
                "--steps", "2", "--batch-size", "6", "--eval-batch-size", "4", "--threads", "1", "--out", out,
            ] + extra, timeout: 300)
    }

    func testTrainAndEvalOnAnImageFolder() throws {
        let scratch = try temporaryFolder(self)
        let run = try train(folder, out: "\(scratch)/run")
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(try String(contentsOfFile: "\(scratch)/run/classes.txt", encoding: .utf8), "ant\nbee\ncat\n")
        let summary = try XCTUnwrap(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: "\(scratch)/run/summary.json"))) as? [String: Any])
        XCTAssertEqual(summary["dataset"] as? String, "folder")
        XCTAssertNil(summary["bad_images"], "counted only with --skip-bad-images")
        let info = try runSFKD([
            "eval", "--checkpoint", "\(scratch)/run/model.safetensors", "--dataset", "folder", "--data-dir", folder,
            "--json",
        ])
        XCTAssertEqual(info.status, 0, info.stderr)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["samples"] as? Int, 6)
        // The model file names its classes; a folder with other class names is refused.
        let renamed = "\(scratch)/renamed"
        try FileManager.default.copyItem(atPath: folder, toPath: renamed)
        for split in ["train", "val"] {
            try FileManager.default.moveItem(atPath: "\(renamed)/\(split)/bee", toPath: "\(renamed)/\(split)/bird")
        }
        let other = try runSFKD([
            "eval", "--checkpoint", "\(scratch)/run/model.safetensors", "--dataset", "folder", "--data-dir", renamed,
        ])
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(other.stderr.contains("label 1: 'bee' in the model, 'bird' in the dataset"), other.stderr)
    }

    func testBadImagesStopTheRunOrAreCountedWhenSkipped() throws {
        let scratch = try temporaryFolder(self)
        let data = "\(scratch)/data"
        try FileManager.default.copyItem(atPath: folder, toPath: data)
        try FileManager.default.copyItem(
            atPath: packageRoot.appendingPathComponent("Tests/Fixtures/images/bad/notes.jpg").path,
            toPath: "\(data)/val/cat/notes.jpg")
        let strict = try train(data, out: "\(scratch)/strict")
        XCTAssertNotEqual(strict.status, 0)
        XCTAssertTrue(
            strict.stderr.contains("val/cat/notes.jpg is neither JPEG nor PNG")
                && strict.stderr.contains("--skip-bad-images"), strict.stderr)
        let skipping = try train(data, out: "\(scratch)/skipping", extra: ["--skip-bad-images"])
        XCTAssertEqual(skipping.status, 0, skipping.stderr)
        XCTAssertTrue(skipping.stderr.contains("skipped a bad image: \(data)/val/cat/notes.jpg"), skipping.stderr)
        let summary = try XCTUnwrap(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: "\(scratch)/skipping/summary.json"))) as? [String: Any])
        XCTAssertEqual(summary["bad_images"] as? Int, 1)
    }

    func testTransformSettingsAreCheckedAgainstTheInputSize() throws {
        let scratch = try temporaryFolder(self)
        let base = [
            "train", "--model", "resnet8", "--dataset", "synthetic", "--steps", "1", "--batch-size", "4", "--out",
            "\(scratch)/run",
        ]
        let unused = try runSFKD(base + ["--reprob", "0.25"])
        XCTAssertNotEqual(unused.status, 0)
        XCTAssertTrue(
            unused.stderr.contains("'reprob' set timm's transforms, which run with input_size"), unused.stderr)
        let reversed = try runSFKD(base + ["--input-size", "16", "--scale", "0.9,0.2"])
        XCTAssertTrue(reversed.stderr.contains("'scale' is 0.9,0.2; give the low end first"), reversed.stderr)
        let padding = try runSFKD(base + ["--input-size", "16", "--crop-padding", "4"])
        XCTAssertTrue(
            padding.stderr.contains("'crop_padding' is the random crop at a dataset's own size"), padding.stderr)
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: "\(scratch)/run/config.yaml"), "refused before anything is written")
        let resized = try runSFKD(base + ["--input-size", "16", "--reprob", "0.25", "--normalization", "imagenet"])
        XCTAssertEqual(resized.status, 0, resized.stderr)
        let metadata = try SafeTensors.read("\(scratch)/run/model.safetensors").metadata
        XCTAssertEqual(metadata["sfkd_input_shape"], "3,16,16")
        XCTAssertEqual(metadata["sfkd_mean"], "0.485,0.456,0.406", "timm's ImageNet mean instead of the dataset's")
        let grey = try runSFKD([
            "train", "--model", "resnet8", "--dataset", "fashion-mnist", "--steps", "1", "--normalization", "imagenet",
            "--out", "\(scratch)/grey",
        ])
        XCTAssertTrue(grey.stderr.contains("'normalization: imagenet' is for RGB images"), grey.stderr)
    }
}
