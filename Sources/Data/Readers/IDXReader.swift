import Foundation
import Settings
import Tensors

/// The IDX format of MNIST and Fashion-MNIST: a magic number (two zero bytes, the type 0x08
/// for unsigned bytes, the number of dimensions), big-endian 32-bit sizes, then the data.
enum IDXReader {
    static func read(_ path: String, expectedDimensions: Int) throws -> (sizes: [Int], data: ArraySlice<UInt8>) {
        let bytes = try readFileBytes(path)
        guard bytes.count >= 4 else {
            throw UserError("file \(path): \(bytes.count) bytes, too short for an IDX header (at least 4)")
        }
        guard bytes[0] == 0, bytes[1] == 0 else {
            throw UserError(
                "file \(path): not an IDX file (magic bytes 0-1 are \(bytes[0]), \(bytes[1]); expected 0, 0)")
        }
        guard bytes[2] == 0x08 else {
            throw UserError(
                "file \(path): IDX data type 0x\(String(bytes[2], radix: 16)) at offset 2; expected 0x08 (unsigned bytes)"
            )
        }
        let dimensions = Int(bytes[3])
        guard dimensions == expectedDimensions else {
            throw UserError(
                "file \(path): IDX header has \(dimensions) dimensions at offset 3; expected \(expectedDimensions)")
        }
        let headerSize = 4 + 4 * dimensions
        guard bytes.count >= headerSize else {
            throw UserError("file \(path): truncated IDX header (\(bytes.count) bytes, expected \(headerSize))")
        }
        let sizes = (0..<dimensions).map { bigEndianUInt32(bytes, 4 + 4 * $0) }
        let available = bytes.count - headerSize
        // The sizes come from the file: their product is checked for overflow before it is trusted.
        guard let expected = checkedProduct(sizes) else {
            throw UserError(
                "file \(path): the header (offset 4) gives sizes \(sizes), more data bytes than any file holds (corrupt)"
            )
        }
        guard available == expected else {
            throw UserError(
                "file \(path): the header (offset 4) gives sizes \(sizes), \(expected) data bytes, but \(available) follow\(available < expected ? " (truncated)" : "")"
            )
        }
        return (sizes, bytes[headerSize...])
    }

    /// Images and labels of one split from an IDX pair.
    static func split(name: String, images imagesPath: String, labels labelsPath: String, classes: Int) throws
        -> ImageDataset
    {
        let (imageSizes, imageData) = try read(imagesPath, expectedDimensions: 3)
        let (labelSizes, labelData) = try read(labelsPath, expectedDimensions: 1)
        guard (1...8192).contains(imageSizes[1]), (1...8192).contains(imageSizes[2]) else {
            throw UserError(
                "file \(imagesPath): image size \(imageSizes[1])x\(imageSizes[2]) in the header (offset 8); expected 1 to 8192 per side"
            )
        }
        guard imageSizes[0] == labelSizes[0] else {
            throw UserError(
                "files \(imagesPath) and \(labelsPath): \(imageSizes[0]) images but \(labelSizes[0]) labels")
        }
        var labels: [Int32] = []
        labels.reserveCapacity(labelSizes[0])
        for (i, label) in labelData.enumerated() {
            guard Int(label) < classes else {
                throw UserError(
                    "file \(labelsPath): label \(label) of item \(i) (offset \(8 + i)) outside 0..<\(classes)")
            }
            labels.append(Int32(label))
        }
        return ImageDataset(
            name: name, shape: [1, imageSizes[1], imageSizes[2]], classes: classes, pixels: Array(imageData),
            labels: labels)
    }

    /// `train-images-idx3-ubyte[.gz]` and friends in `directory`.
    static func load(name: String, directory: String, classes: Int) throws -> (ImageDataset, ImageDataset) {
        func locate(_ stem: String) throws -> String {
            for candidate in [stem, stem + ".gz"] {
                let path = (directory as NSString).appendingPathComponent(candidate)
                if FileManager.default.fileExists(atPath: path) { return path }
            }
            throw UserError("dataset '\(name)': \(stem)[.gz] not found in \(directory)")
        }
        let train = try split(
            name: name, images: try locate("train-images-idx3-ubyte"), labels: try locate("train-labels-idx1-ubyte"),
            classes: classes)
        let test = try split(
            name: name, images: try locate("t10k-images-idx3-ubyte"), labels: try locate("t10k-labels-idx1-ubyte"),
            classes: classes)
        guard train.shape == test.shape else {
            throw UserError(
                "dataset '\(name)' in \(directory): train images are \(train.shape) but test images \(test.shape)")
        }
        return (train, test)
    }
}
