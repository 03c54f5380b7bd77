import Data
import Foundation
import Settings
import Tensors
import TestSupport
import XCTest

/// Corrupted dataset files, generated: each valid file truncated at every header boundary and
/// beyond, each header byte flipped, and extreme values in every size field. A reader must give
/// a clear error or read a consistent dataset: never crash, never allocate from a size it did
/// not check. Also run on the release build (`launch/test`), where Swift's own checks are off.
final class CorruptFileTests: XCTestCase {
    /// Variants of `bytes` for a header of `headerLength` bytes whose size fields start at `sizeFields`.
    func variants(of bytes: [UInt8], headerLength: Int, sizeFields: [(offset: Int, width: Int, bigEndian: Bool)]) -> [(
        String, [UInt8]
    )] {
        var result: [(String, [UInt8])] = []
        for cut in 0..<min(bytes.count, headerLength + 9) {
            result.append(("truncated at \(cut)", Array(bytes[0..<cut])))
        }
        for index in 0..<min(bytes.count, headerLength) {
            var flipped = bytes
            flipped[index] ^= 0xFF
            result.append(("byte \(index) flipped", flipped))
        }
        let extremes: [UInt64] = [
            0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x7FFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF,
        ]
        for field in sizeFields {
            for value in extremes {
                var changed = bytes
                for k in 0..<field.width {
                    let shift = field.bigEndian ? 8 * (field.width - 1 - k) : 8 * k
                    changed[field.offset + k] = UInt8(truncatingIfNeeded: value >> UInt64(shift))
                }
                result.append(("size field at \(field.offset) = \(value)", changed))
            }
        }
        return result
    }

    /// Loads `dataset` from `folder` after `prepare` wrote a corrupt file; only `UserError` may come out.
    func expectClearErrorOrConsistentData(_ dataset: String, folder: String, what: String) {
        do {
            let splits = try DatasetRegistry.load(dataset, directory: folder)
            for split in [splits.train, splits.test] {
                XCTAssertEqual(
                    split.pixels.count, split.count * split.shape.reduce(1, *), "\(what): inconsistent dataset accepted"
                )
                XCTAssertTrue(
                    split.labels.allSatisfy { $0 >= 0 && Int($0) < split.classes },
                    "\(what): label out of range accepted")
            }
        } catch is UserError {
        } catch {
            XCTFail("\(what): not a clear error: \(error)")
        }
    }

    func testCorruptIDXFilesGiveClearErrors() throws {
        let folder = try temporaryFolder(self)
        let images = idxBytes(dimensions: [2, 3, 3], data: [UInt8](repeating: 7, count: 18))
        let labels = idxBytes(dimensions: [2], data: [1, 2])
        func writeAll(_ imageBytes: [UInt8], _ labelBytes: [UInt8]) throws {
            for prefix in ["train", "t10k"] {
                try write(imageBytes, to: "\(folder)/\(prefix)-images-idx3-ubyte")
                try write(labelBytes, to: "\(folder)/\(prefix)-labels-idx1-ubyte")
            }
        }
        let imageFields = (0..<3).map { (offset: 4 + 4 * $0, width: 4, bigEndian: true) }
        for (what, bytes) in variants(of: images, headerLength: 16, sizeFields: imageFields) {
            try writeAll(bytes, labels)
            expectClearErrorOrConsistentData("mnist", folder: folder, what: "IDX images, \(what)")
        }
        for (what, bytes) in variants(of: labels, headerLength: 8, sizeFields: [(4, 4, true)]) {
            try writeAll(images, bytes)
            expectClearErrorOrConsistentData("mnist", folder: folder, what: "IDX labels, \(what)")
        }
        // Dimensions whose product wraps past 2^64 to exactly the data present (none).
        try writeAll(idxBytes(dimensions: [0x8000_0000, 0x8000_0000, 4], data: []), labels)
        XCTAssertThrowsError(try DatasetRegistry.load("mnist", directory: folder)) { error in
            XCTAssertTrue(
                "\(error)".contains("train-images-idx3-ubyte") && "\(error)".contains("2147483648, 2147483648, 4"),
                "\(error)")
        }
    }

    func testCorruptNPYFilesGiveClearErrors() throws {
        let folder = try temporaryFolder(self)
        let images = npyBytes(descr: "|u1", shape: [2, 3, 3], data: [UInt8](repeating: 9, count: 18))
        let labels = npyBytes(descr: "<i8", shape: [2], data: [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
        func writeAll(_ imageBytes: [UInt8], _ labelBytes: [UInt8]) throws {
            for prefix in ["train", "test"] {
                try write(imageBytes, to: "\(folder)/\(prefix)_images.npy")
                try write(labelBytes, to: "\(folder)/\(prefix)_labels.npy")
            }
        }
        for (what, bytes) in variants(of: images, headerLength: 64, sizeFields: [(8, 2, false)]) {
            try writeAll(bytes, labels)
            expectClearErrorOrConsistentData("npy", folder: folder, what: "NPY images, \(what)")
        }
        for (what, bytes) in variants(of: labels, headerLength: 64, sizeFields: [(8, 2, false)]) {
            try writeAll(images, bytes)
            expectClearErrorOrConsistentData("npy", folder: folder, what: "NPY labels, \(what)")
        }
        // A shape that wraps, a negative dimension, a label of 10^9.
        for (shape, message) in [
            ("(4294967296, 4294967296, 4294967296)", "describes more data than any file can hold"),
            ("(-2, 3, 3)", "non-negative integers"),
        ] {
            var header = "{'descr': '|u1', 'fortran_order': False, 'shape': \(shape), }"
            while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
            header += "\n"
            let bytes: [UInt8] =
                [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8)
                + [UInt8](repeating: 0, count: 18)
            try writeAll(bytes, labels)
            XCTAssertThrowsError(try DatasetRegistry.load("npy", directory: folder)) { error in
                XCTAssertTrue(
                    "\(error)".contains("train_images.npy") && "\(error)".contains(message), "\(shape): \(error)")
            }
        }
        var huge: [UInt8] = []
        for value in [0, 1_000_000_000] { for b in 0..<8 { huge.append(UInt8(truncatingIfNeeded: value >> (8 * b))) } }
        try writeAll(images, npyBytes(descr: "<i8", shape: [2], data: huge))
        XCTAssertThrowsError(try DatasetRegistry.load("npy", directory: folder)) { error in
            XCTAssertTrue("\(error)".contains("label 1000000000 of item 1 is not below 100000"), "\(error)")
        }
    }

    func testCorruptCIFARFilesGiveClearErrors() throws {
        let folder = try temporaryFolder(self) + "/cifar-10-batches-bin"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let record = [UInt8(3)] + [UInt8](repeating: 5, count: 3072)
        for (what, bytes) in variants(of: record + record, headerLength: 1, sizeFields: []) + [
            ("label 200", [200] + record.dropFirst())
        ] {
            for name in (1...5).map({ "data_batch_\($0).bin" }) + ["test_batch.bin"] {
                try write(bytes, to: "\(folder)/\(name)")
            }
            expectClearErrorOrConsistentData("cifar10", folder: folder, what: "CIFAR, \(what)")
        }
    }
}
