import Data
import Foundation
import Tensors
import TestSupport
import XCTest

/// Image folders decoded through libjpeg-turbo and libpng, against what PIL gave for the same
/// files (`launch/interop/make-image-fixtures` wrote them; CI needs no Python).
final class ImageFolderTests: XCTestCase {
    let fixtures = packageRoot.appendingPathComponent("Tests/Fixtures/images").path

    func references(_ name: String) throws -> [String: (shape: [Int], values: [Float])] {
        try readFloatTensors("\(fixtures)/\(name)")
    }

    func maxDifference(_ pixels: [UInt8], _ reference: [Float]) -> Float { pixelDifference(pixels, reference) }

    func testDecodingMatchesPIL() throws {
        let expected = try references("decoded.safetensors")
        XCTAssertGreaterThanOrEqual(expected.count, 20)
        var formats: Set<String> = []
        for (path, reference) in expected {
            let image = try ImageDecoder.decode(path: "\(fixtures)/\(path)")
            XCTAssertEqual([image.height, image.width, 3], reference.shape, path)
            let isPNG = path.lowercased().hasSuffix(".png")
            formats.insert(isPNG ? "png" : "jpeg")
            // PNG is lossless: exact. JPEG: libjpeg-turbo's integer IDCT and upsampling, as PIL's
            // bundled libjpeg-turbo; a version apart they may differ by a level or two.
            XCTAssertLessThanOrEqual(maxDifference(image.pixels, reference.values), isPNG ? 0 : 2, path)
        }
        XCTAssertEqual(formats, ["png", "jpeg"])
    }

    func testResizeEvalTransformAndTrainingOpsMatchPILAndTorchvision() throws {
        let expected = try references("transformed.safetensors"), decoded = try references("decoded.safetensors")
        XCTAssertFalse(expected.isEmpty)
        for (key, reference) in expected {
            let parts = key.split(separator: "|").map(String.init)
            // From the pixels PIL decoded, so the resize alone is compared.
            let source = try XCTUnwrap(decoded[parts.last!])
            let image = PixelImage(
                width: source.shape[1], height: source.shape[0], pixels: source.values.map { UInt8($0) })
            switch parts[0] {
            case "jitter":
                let factor = Float(parts[2])!
                let out =
                    parts[1] == "brightness"
                    ? image.adjustingBrightness(factor)
                    : parts[1] == "contrast" ? image.adjustingContrast(factor) : image.adjustingSaturation(factor)
                XCTAssertEqual(maxDifference(out.pixels, reference.values), 0, key)
                continue
            case "flip":
                XCTAssertEqual(maxDifference(image.flippedHorizontally().pixels, reference.values), 0, key)
                continue
            case "rrc":
                let box = parts[1].split(separator: ",").map { Int($0)! }, size = Int(parts[2])!
                let out = image.cropped(left: box[0], top: box[1], width: box[2], height: box[3])
                    .resized(width: size, height: size, interpolation: Interpolation(rawValue: parts[3])!)
                XCTAssertLessThanOrEqual(maxDifference(out.pixels, reference.values), 1, key)
                continue
            default:
                break
            }
            if parts[0] == "resize" {
                let size = parts[2].split(separator: "x").map { Int($0)! }
                let resized = image.resized(
                    width: size[0], height: size[1], interpolation: Interpolation(rawValue: parts[1])!)
                // Exact, except that Pillow 13 runs the vertical pass first when the height shrinks
                // much more than the width (Pillow #9549); sfkd keeps the horizontal-first order of
                // earlier Pillows, and the two orders round differently by at most one level.
                let bothAxes = size[0] != image.width && size[1] != image.height
                XCTAssertLessThanOrEqual(maxDifference(resized.pixels, reference.values), bothAxes ? 1 : 0, key)
            } else {
                let size = Int(parts[1])!
                let out = image.resizedAndCenterCropped(
                    size: size, cropPercent: Double(parts[2])!, interpolation: Interpolation(rawValue: parts[3])!)
                // The reference is channel-major (torchvision's ToTensor).
                let plane = size * size
                let chw = (0..<(3 * plane)).map { i in out.pixels[3 * (i % plane) + i / plane] }
                XCTAssertEqual(reference.shape, [3, size, size], key)
                XCTAssertEqual(maxDifference(chw, reference.values), 0, key)
            }
        }
    }

    func testBadFilesAreErrorsNamingTheFile() {
        let cases = [
            ("truncated.jpg", "corrupt or truncated JPEG"), ("corrupt.png", "PNG"),
            ("notes.jpg", "neither JPEG nor PNG"),
        ]
        for (file, message) in cases {
            XCTAssertThrowsError(try ImageDecoder.decode(path: "\(fixtures)/bad/\(file)"), file) { error in
                XCTAssertTrue("\(error)".contains("bad/\(file)") && "\(error)".contains(message), "\(error)")
            }
        }
    }

    func testLargeJPEGsUseDCTScaling() {
        XCTAssertEqual(
            ImageDecoder.scaledSize(width: 4000, height: 3000, keepingShortSideAtLeast: 448).1, 750,
            "1/4 keeps 750 >= 448; 1/8 would give 375")
        let same = ImageDecoder.scaledSize(width: 500, height: 375, keepingShortSideAtLeast: 448)
        XCTAssertEqual(same.0, 500)
        XCTAssertEqual(same.1, 375)
    }

    func testFolderLayoutClassesAndStructureErrors() throws {
        let root = "\(fixtures)/folder"
        let (train, val) = try ImageFolder.splits(train: "\(root)/train", val: "\(root)/val")
        XCTAssertEqual(train.classNames, ["ant", "bee", "cat"])
        XCTAssertEqual(train.paths.count, 18)
        XCTAssertEqual(val.paths.count, 6)
        XCTAssertEqual(
            train.labels,
            [Int32](repeating: 0, count: 6) + [Int32](repeating: 1, count: 6) + [Int32](repeating: 2, count: 6))
        XCTAssertTrue(
            train.paths.contains { $0.hasSuffix(".JPEG") } && train.paths.contains { $0.hasSuffix(".PNG") },
            "extensions in any case")

        let scratch = try temporaryFolder(self)
        let manager = FileManager.default
        try manager.copyItem(atPath: root, toPath: "\(scratch)/data")
        try manager.createDirectory(atPath: "\(scratch)/data/train/dog", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: "\(scratch)/data/train/dog/readme.txt"))
        XCTAssertThrowsError(try ImageFolder.splits(train: "\(scratch)/data/train", val: "\(scratch)/data/val")) {
            error in
            XCTAssertTrue("\(error)".contains("data/train/dog has no .jpg, .jpeg or .png images"), "\(error)")
        }
        try manager.copyItem(atPath: "\(root)/train/ant/ant0.jpg", toPath: "\(scratch)/data/train/dog/dog0.jpg")
        XCTAssertThrowsError(try ImageFolder.splits(train: "\(scratch)/data/train", val: "\(scratch)/data/val")) {
            error in
            XCTAssertTrue("\(error)".contains("only in \(scratch)/data/train: dog"), "\(error)")
        }
        XCTAssertThrowsError(try DatasetRegistry.load("folder", directory: "\(scratch)/none")) { error in
            XCTAssertTrue("\(error)".contains("\(scratch)/none"), "\(error)")
        }
        try manager.removeItem(atPath: "\(scratch)/data/val")
        XCTAssertThrowsError(try DatasetRegistry.load("folder", directory: "\(scratch)/data")) { error in
            XCTAssertTrue("\(error)".contains("the val split \(scratch)/data/val is not a folder"), "\(error)")
        }
    }

    /// A file name that is not UTF-8 (Latin-1 "café" here) is listed and decoded as torchvision's
    /// ImageFolder reads it, never dropped; its path prints readably and opens the same file. A
    /// folder linked into its own class folder is not entered (no endless walk).
    func testFileNamesThatAreNotUTF8AreReadAndLinkLoopsEnd() throws {
        let scratch = try temporaryFolder(self)
        try FileManager.default.copyItem(atPath: "\(fixtures)/folder", toPath: "\(scratch)/data")
        let latin1: [UInt8] = Array("\(scratch)/data/train/cat/caf".utf8) + [0xE9] + Array(".png".utf8)
        let source = "\(scratch)/data/train/cat/cat5.png"
        XCTAssertEqual(rename(source, latin1.map { CChar(bitPattern: $0) } + [0]), 0, "rename to a Latin-1 name")
        XCTAssertEqual(symlink("\(scratch)/data/train/cat", "\(scratch)/data/train/cat/loop"), 0)
        let folder = try ImageFolder.scan("\(scratch)/data/train", split: "train")
        XCTAssertEqual(folder.paths.count, 18, "every image, the Latin-1 one included")
        let odd = try XCTUnwrap(folder.paths.first { $0.contains("caf") })
        XCTAssertTrue(odd.hasSuffix("caf\u{F7E9}.png"), odd)
        let image = try ImageDecoder.decode(path: odd)
        let original = try ImageDecoder.decode(path: "\(fixtures)/folder/train/cat/cat5.png")
        XCTAssertEqual(image.pixels, original.pixels)
        XCTAssertEqual(image.width, original.width)
    }

    /// A batch of the folder dataset at 16x16: each sample is timm's eval transform of its file,
    /// normalised; a bad file stops the batch naming it, or with skipping is replaced and counted.
    func testFolderBatchesAndBadImages() throws {
        var options = DatasetRegistry.FolderOptions()
        options.pipeline = ImagePipeline(size: 16)
        let splits = try DatasetRegistry.load("folder", directory: "\(fixtures)/folder", folder: options)
        XCTAssertEqual(splits.shape, [3, 16, 16])
        XCTAssertEqual(splits.classes, 3)
        XCTAssertEqual(splits.train.classNames, ["ant", "bee", "cat"])
        let batch = try BatchLoader.assemble(
            splits.test, indices: [0, 5], mean: [0, 0, 0], std: [1, 1, 1], augmentation: nil, seed: 0, epoch: 0)
        XCTAssertEqual(batch.labels, [0, 2])
        let first = try ImageDecoder.decode(path: splits.test.files!.folder.paths[0]).resizedAndCenterCropped(
            size: 16, cropPercent: 0.875, interpolation: .bicubic)
        for i in 0..<(16 * 16) {
            XCTAssertEqual(batch.images.data[i], Float(first.pixels[3 * i]) / 255, accuracy: 1e-6)
        }

        let scratch = try temporaryFolder(self)
        try FileManager.default.copyItem(atPath: "\(fixtures)/folder", toPath: "\(scratch)/data")
        try FileManager.default.copyItem(
            atPath: "\(fixtures)/bad/truncated.jpg", toPath: "\(scratch)/data/val/ant/zz-truncated.jpg")
        let strict = try DatasetRegistry.load("folder", directory: "\(scratch)/data", folder: options)
        let badIndex = try XCTUnwrap(strict.test.files!.folder.paths.firstIndex { $0.hasSuffix("zz-truncated.jpg") })
        XCTAssertThrowsError(
            try BatchLoader.assemble(
                strict.test, indices: [badIndex], mean: [0, 0, 0], std: [1, 1, 1], augmentation: nil, seed: 0, epoch: 0)
        ) { error in
            XCTAssertTrue(
                "\(error)".contains("zz-truncated.jpg") && "\(error)".contains("--skip-bad-images"), "\(error)")
        }
        options.skipBadImages = true
        let skipping = try DatasetRegistry.load("folder", directory: "\(scratch)/data", folder: options)
        let replaced = try BatchLoader.assemble(
            skipping.test, indices: [badIndex], mean: [0, 0, 0], std: [1, 1, 1], augmentation: nil, seed: 0, epoch: 0)
        let next = try BatchLoader.assemble(
            skipping.test, indices: [badIndex + 1], mean: [0, 0, 0], std: [1, 1, 1], augmentation: nil, seed: 0,
            epoch: 0)
        XCTAssertEqual(replaced.images.array, next.images.array, "the bad file is replaced by the next one")
        XCTAssertEqual(skipping.test.files!.badImages.map(\.path), [skipping.test.files!.folder.paths[badIndex]])
    }

    /// RandomResizedCrop's boxes follow torchvision's rule: inside the image, the area fraction
    /// in `scale` and the aspect ratio in `ratio` (or the clamped centre crop).
    func testRandomResizedCropBoxes() {
        var pipeline = ImagePipeline(size: 16)
        pipeline.scale = [0.2, 0.6]
        var generator = RandomGenerator(seed: 3)
        var fractions: [Double] = []
        for _ in 0..<2000 {
            let box = pipeline.cropBox(width: 40, height: 30, generator: &generator)
            XCTAssertTrue(
                box.left >= 0 && box.top >= 0 && box.left + box.width <= 40 && box.top + box.height <= 30, "\(box)")
            let aspect = Double(box.width) / Double(box.height)
            XCTAssertTrue(aspect > 0.7 && aspect < 1.43, "\(box)")
            fractions.append(Double(box.width * box.height) / 1200)
        }
        XCTAssertGreaterThan(fractions.min()!, 0.17)
        XCTAssertLessThan(fractions.max()!, 0.65)
        XCTAssertEqual(fractions.reduce(0, +) / 2000, 0.4, accuracy: 0.03, "uniform over the area range")
        // A ratio range the image cannot meet: the centre crop, clamped to the range.
        pipeline.scale = [1, 1]
        pipeline.ratio = [2, 3]
        XCTAssertEqual(
            pipeline.cropBox(width: 40, height: 30, generator: &generator),
            ImagePipeline.CropBox(left: 0, top: 5, width: 40, height: 20))
    }

    /// The training transforms are a pure function of the generator's seed, reach every op,
    /// and random erasing fills a box of 2%-33% of the sample with noise.
    func testTrainingTransformsAreReproducibleAndErasingFillsABox() throws {
        let image = try ImageDecoder.decode(path: "\(fixtures)/folder/train/ant/ant0.jpg")
        var pipeline = ImagePipeline(size: 24)
        var a = RandomGenerator(seed: 9), b = RandomGenerator(seed: 9), c = RandomGenerator(seed: 10)
        XCTAssertEqual(
            pipeline.trainImage(image, fill: [124, 116, 104], generator: &a).pixels,
            pipeline.trainImage(image, fill: [124, 116, 104], generator: &b).pixels)
        XCTAssertNotEqual(
            pipeline.trainImage(image, fill: [124, 116, 104], generator: &a).pixels,
            pipeline.trainImage(image, fill: [124, 116, 104], generator: &c).pixels)
        pipeline.erasingProbability = 1
        let sample = [Float](repeating: 7, count: 3 * 24 * 24)
        var erased = sample
        var generator = RandomGenerator(seed: 4)
        erased.withUnsafeMutableBufferPointer { pipeline.erase($0.baseAddress!, channels: 3, generator: &generator) }
        let changed = zip(sample, erased).filter { $0 != $1 }.count
        XCTAssertGreaterThanOrEqual(Double(changed) / Double(sample.count), 0.015)
        XCTAssertLessThanOrEqual(Double(changed) / Double(sample.count), 0.34)
        pipeline.erasingProbability = 0
        var untouched = sample
        untouched.withUnsafeMutableBufferPointer { pipeline.erase($0.baseAddress!, channels: 3, generator: &generator) }
        XCTAssertEqual(untouched, sample)
    }
}
