import Foundation
import Settings
import Tensors

/// The official CIFAR binary versions: records of label byte(s) then 3072 bytes of a 32x32
/// image, red, green and blue planes. CIFAR-100 records carry a coarse then a fine label;
/// the fine one is used.
enum CIFARReader {
    static func read(_ path: String, name: String, labelBytes: Int, classes: Int) throws -> ImageDataset {
        let bytes = try readFileBytes(path)
        let imageBytes = 3 * 32 * 32
        let record = labelBytes + imageBytes
        guard bytes.count > 0, bytes.count % record == 0 else {
            throw UserError(
                "file \(path): \(bytes.count) bytes is not a whole number of \(record)-byte records (\(bytes.count / record) complete; the last is cut at offset \(bytes.count / record * record))"
            )
        }
        let count = bytes.count / record
        var pixels = [UInt8](repeating: 0, count: count * imageBytes)
        var labels = [Int32](repeating: 0, count: count)
        for i in 0..<count {
            let offset = i * record
            let label = Int(bytes[offset + labelBytes - 1])
            guard label < classes else {
                throw UserError(
                    "file \(path): record \(i) (offset \(offset + labelBytes - 1)) has label \(label), outside 0..<\(classes)"
                )
            }
            labels[i] = Int32(label)
            pixels.replaceSubrange(
                i * imageBytes..<(i + 1) * imageBytes, with: bytes[(offset + labelBytes)..<(offset + record)])
        }
        return ImageDataset(name: name, shape: [3, 32, 32], classes: classes, pixels: pixels, labels: labels)
    }

    static func concatenate(_ parts: [ImageDataset]) -> ImageDataset {
        ImageDataset(
            name: parts[0].name, shape: parts[0].shape, classes: parts[0].classes,
            pixels: parts.flatMap(\.pixels), labels: parts.flatMap(\.labels))
    }

    /// Accepts the extracted folder itself or its parent.
    static func folder(_ directory: String, subfolder: String, required: String) throws -> String {
        for candidate in [directory, (directory as NSString).appendingPathComponent(subfolder)] {
            if FileManager.default.fileExists(atPath: (candidate as NSString).appendingPathComponent(required)) {
                return candidate
            }
        }
        throw UserError(
            "\(required) not found in \(directory) or \(directory)/\(subfolder); download the binary version and extract it there"
        )
    }

    static func loadCIFAR10(directory: String) throws -> (ImageDataset, ImageDataset) {
        let root = try folder(directory, subfolder: "cifar-10-batches-bin", required: "test_batch.bin")
        let train = try (1...5).map {
            try read(
                (root as NSString).appendingPathComponent("data_batch_\($0).bin"), name: "cifar10", labelBytes: 1,
                classes: 10)
        }
        let test = try read(
            (root as NSString).appendingPathComponent("test_batch.bin"), name: "cifar10", labelBytes: 1, classes: 10)
        return (concatenate(train), test)
    }

    static func loadCIFAR100(directory: String) throws -> (ImageDataset, ImageDataset) {
        let root = try folder(directory, subfolder: "cifar-100-binary", required: "test.bin")
        let train = try read(
            (root as NSString).appendingPathComponent("train.bin"), name: "cifar100", labelBytes: 2, classes: 100)
        let test = try read(
            (root as NSString).appendingPathComponent("test.bin"), name: "cifar100", labelBytes: 2, classes: 100)
        return (train, test)
    }
}
