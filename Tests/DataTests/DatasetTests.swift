import Data
import Foundation
import Tensors
import TestSupport
import XCTest

func idxBytes(dimensions: [Int], data: [UInt8]) -> [UInt8] {
    var bytes: [UInt8] = [0, 0, 0x08, UInt8(dimensions.count)]
    for d in dimensions {
        bytes += [UInt8(d >> 24 & 0xff), UInt8(d >> 16 & 0xff), UInt8(d >> 8 & 0xff), UInt8(d & 0xff)]
    }
    return bytes + data
}

func npyBytes(descr: String, shape: [Int], data: [UInt8]) -> [UInt8] {
    let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
    while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    let length = header.utf8.count
    return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(length & 0xff), UInt8(length >> 8)] + Array(header.utf8) + data
}

func write(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

func gzipFile(_ path: String) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/gzip")
    process.arguments = ["-f", path]
    try process.run()
    process.waitUntilExit()
}

final class DatasetTests: XCTestCase {
    func testFashionMNISTFromDebian() throws {
        guard FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist") else {
            throw XCTSkip("dataset-fashion-mnist is not installed (launch/install-deps installs it)")
        }
        let splits = try DatasetRegistry.load("fashion-mnist")
        XCTAssertEqual(splits.train.count, 60_000)
        XCTAssertEqual(splits.test.count, 10_000)
        XCTAssertEqual(splits.shape, [1, 28, 28])
        XCTAssertEqual(Set(splits.test.labels).count, 10)
        let (mean, std) = splits.train.channelStatistics()
        XCTAssertEqual(mean[0], 0.2860, accuracy: 0.001)
        XCTAssertEqual(std[0], 0.3530, accuracy: 0.001)
    }

    func writeIDXFolder(
        _ folder: String, images: Int = 5, gzip: Bool = false, truncateImagesBy: Int = 0, badLabel: Bool = false
    ) throws {
        for prefix in ["train", "t10k"] {
            let imagePath = folder + "/\(prefix)-images-idx3-ubyte", labelPath = folder + "/\(prefix)-labels-idx1-ubyte"
            var imageBytes = idxBytes(dimensions: [images, 4, 3], data: (0..<(images * 12)).map { UInt8($0 % 256) })
            imageBytes.removeLast(truncateImagesBy)
            try write(imageBytes, to: imagePath)
            try write(
                idxBytes(dimensions: [images], data: (0..<images).map { badLabel && $0 == 3 ? 12 : UInt8($0 % 10) }),
                to: labelPath)
            if gzip {
                try gzipFile(imagePath)
                try gzipFile(labelPath)
            }
        }
    }

    func testIDXPlainAndGzipped() throws {
        for gzip in [false, true] {
            let folder = try temporaryFolder(self)
            try writeIDXFolder(folder, gzip: gzip)
            let splits = try DatasetRegistry.load("mnist", directory: folder)
            XCTAssertEqual(splits.shape, [1, 4, 3])
            XCTAssertEqual(splits.train.labels, [0, 1, 2, 3, 4])
            XCTAssertEqual(Array(splits.train.pixels[12..<15]), [12, 13, 14])
        }
    }

    func testCorruptIDXFilesNameTheFileAndField() throws {
        let folder = try temporaryFolder(self)
        try writeIDXFolder(folder, truncateImagesBy: 7)
        XCTAssertThrowsError(try DatasetRegistry.load("mnist", directory: folder)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("train-images-idx3-ubyte"), text)
            XCTAssertTrue(text.contains("60 data bytes, but 53 follow (truncated)"), text)
        }
        let labels = try temporaryFolder(self)
        try writeIDXFolder(labels, badLabel: true)
        XCTAssertThrowsError(try DatasetRegistry.load("mnist", directory: labels)) { error in
            XCTAssertTrue("\(error)".contains("label 12 of item 3 (offset 11) outside 0..<10"), "\(error)")
        }
        let magic = try temporaryFolder(self)
        try writeIDXFolder(magic)
        try write([1, 2, 8, 3, 0, 0], to: magic + "/train-images-idx3-ubyte")
        XCTAssertThrowsError(try DatasetRegistry.load("mnist", directory: magic)) { error in
            XCTAssertTrue("\(error)".contains("not an IDX file"), "\(error)")
        }
        // A gzip stream cut in half.
        let cut = try temporaryFolder(self)
        try writeIDXFolder(cut, images: 2000, gzip: true)
        let path = cut + "/train-images-idx3-ubyte.gz"
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        try write(Array(bytes.prefix(bytes.count / 2)), to: path)
        XCTAssertThrowsError(try DatasetRegistry.load("mnist", directory: cut)) { error in
            XCTAssertTrue("\(error)".contains("train-images-idx3-ubyte.gz"), "\(error)")
        }
    }

    func testMissingFolderAndUnknownNames() {
        XCTAssertThrowsError(try DatasetRegistry.load("mnist", directory: "/nonexistent/mnist")) { error in
            XCTAssertTrue("\(error)".contains("folder /nonexistent/mnist not found"), "\(error)")
        }
        XCTAssertThrowsError(try DatasetRegistry.load("cifar10")) { error in
            XCTAssertTrue("\(error)".contains("pass --data-dir"), "\(error)")
        }
        XCTAssertThrowsError(try DatasetRegistry.load("imagenet")) { error in
            XCTAssertTrue("\(error)".contains("unknown dataset 'imagenet'"), "\(error)")
            XCTAssertTrue("\(error)".contains("fashion-mnist"), "\(error)")
        }
    }

    func testCIFAR10BinaryAndTruncation() throws {
        let folder = try temporaryFolder(self)
        let root = folder + "/cifar-10-batches-bin"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        func records(_ count: Int, labelOffset: Int) -> [UInt8] {
            (0..<count).flatMap { i in [UInt8((i + labelOffset) % 10)] + [UInt8](repeating: UInt8(i), count: 3072) }
        }
        for b in 1...5 { try write(records(2, labelOffset: b), to: root + "/data_batch_\(b).bin") }
        try write(records(3, labelOffset: 0), to: root + "/test_batch.bin")
        let splits = try DatasetRegistry.load("cifar10", directory: folder)
        XCTAssertEqual(splits.train.count, 10)
        XCTAssertEqual(splits.test.labels, [0, 1, 2])
        XCTAssertEqual(splits.shape, [3, 32, 32])
        var truncated = records(3, labelOffset: 0)
        truncated.removeLast(100)
        try write(truncated, to: root + "/test_batch.bin")
        XCTAssertThrowsError(try DatasetRegistry.load("cifar10", directory: folder)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("test_batch.bin") && text.contains("3073-byte records"), text)
        }
    }

    func testNPYImagesInHWCAndLabels() throws {
        let folder = try temporaryFolder(self)
        // 2 images of 2x3 with 3 channels: value = 100 * channel + 10 * y + x + image.
        var hwc: [UInt8] = []
        for i in 0..<2 {
            for y in 0..<2 { for x in 0..<3 { for c in 0..<3 { hwc.append(UInt8(100 * c + 10 * y + x + i)) } } }
        }
        for split in ["train", "test"] {
            try write(npyBytes(descr: "|u1", shape: [2, 2, 3, 3], data: hwc), to: folder + "/\(split)_images.npy")
            try write(
                npyBytes(descr: "<i8", shape: [2], data: [1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]),
                to: folder + "/\(split)_labels.npy")
        }
        let splits = try DatasetRegistry.load("npy", directory: folder)
        XCTAssertEqual(splits.shape, [3, 2, 3])
        XCTAssertEqual(splits.classes, 5)
        XCTAssertEqual(splits.train.labels, [1, 4])
        // CHW: channel 2, y 1, x 2 of image 1 = 200 + 10 + 2 + 1.
        XCTAssertEqual(splits.train.pixels[18 + 2 * 6 + 1 * 3 + 2], 213)

        try write(
            npyBytes(descr: "<f4", shape: [2, 2, 3], data: [UInt8](repeating: 0, count: 48)),
            to: folder + "/train_images.npy")
        XCTAssertThrowsError(try DatasetRegistry.load("npy", directory: folder)) { error in
            XCTAssertTrue(
                "\(error)".contains("train_images.npy: field 'descr' is '<f4'; images must be '|u1'"), "\(error)")
        }
        try write(
            Array(npyBytes(descr: "|u1", shape: [2, 2, 3, 3], data: hwc).dropLast(5)), to: folder + "/train_images.npy")
        XCTAssertThrowsError(try DatasetRegistry.load("npy", directory: folder)) { error in
            XCTAssertTrue("\(error)".contains("needs 36 data bytes"), "\(error)")
        }
    }

    func testSyntheticIsDeterministicAndBalancedEnough() throws {
        let a = try DatasetRegistry.load("synthetic"), b = try DatasetRegistry.load("synthetic")
        XCTAssertEqual(a.train.pixels, b.train.pixels)
        XCTAssertEqual(a.train.labels, b.train.labels)
        XCTAssertEqual(Set(a.test.labels).count, 10)
        XCTAssertEqual(a.shape, [3, 32, 32])
    }
}
