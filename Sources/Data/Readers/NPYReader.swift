import Foundation
import Settings
import Tensors

/// NumPy's .npy format: magic "\x93NUMPY", version, a little-endian header length, a Python
/// dict literal with 'descr', 'fortran_order' and 'shape', then the raw data.
enum NPYReader {
    struct Array {
        let descr: String
        let shape: [Int]
        let data: ArraySlice<UInt8>
    }

    static func read(_ path: String) throws -> Array {
        let bytes = try readFileBytes(path)
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard bytes.count >= 10, Swift.Array(bytes[0..<6]) == magic else {
            throw UserError("file \(path): not a .npy file (the first 6 bytes are not \\x93NUMPY)")
        }
        let major = Int(bytes[6])
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw UserError("file \(path): truncated .npy header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw UserError("file \(path): .npy version \(major) at offset 6; expected 1, 2 or 3")
        }
        guard headerLength <= bytes.count - headerStart else {
            throw UserError(
                "file \(path): truncated .npy header (needs \(headerStart + headerLength) bytes, file has \(bytes.count))"
            )
        }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        guard let descr = value(of: "descr", in: header)?.trimmingCharacters(in: CharacterSet(charactersIn: "'\" "))
        else {
            throw UserError("file \(path): .npy header has no 'descr' field: \(header)")
        }
        if let fortran = value(of: "fortran_order", in: header), fortran.trimmingCharacters(in: .whitespaces) != "False"
        {
            throw UserError("file \(path): field 'fortran_order' is \(fortran); expected False (C order)")
        }
        guard let shapeText = value(of: "shape", in: header) else {
            throw UserError("file \(path): .npy header has no 'shape' field: \(header)")
        }
        let fields = shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "() "))
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let shape = fields.compactMap { Int($0) }
        guard shape.count == fields.count, shape.allSatisfy({ $0 >= 0 }) else {
            throw UserError("file \(path): field 'shape' is \(shapeText); expected a tuple of non-negative integers")
        }
        let itemSize = try NPYReader.itemSize(descr, path: path)
        let dataStart = headerStart + headerLength
        let available = bytes.count - dataStart
        // Sizes from the file: the product is checked for overflow before it is compared.
        guard let elements = checkedProduct(shape), let expected = checkedProduct([elements, itemSize]) else {
            throw UserError("file \(path): field 'shape' \(shape) describes more data than any file can hold")
        }
        guard available == expected else {
            throw UserError(
                "file \(path): field 'shape' \(shape) with dtype '\(descr)' needs \(expected) data bytes after offset \(dataStart), found \(available)"
            )
        }
        return Array(descr: descr, shape: shape, data: bytes[dataStart...])
    }

    /// The text after `'key':` up to the next top-level comma.
    private static func value(of key: String, in header: String) -> String? {
        guard let keyRange = header.range(of: "'\(key)'") ?? header.range(of: "\"\(key)\""),
            let colon = header[keyRange.upperBound...].firstIndex(of: ":")
        else { return nil }
        var depth = 0
        var end = header.index(after: colon)
        while end < header.endIndex {
            let c = header[end]
            if c == "(" { depth += 1 }
            if c == ")" { depth -= 1 }
            if (c == "," && depth == 0) || c == "}" { break }
            end = header.index(after: end)
        }
        return String(header[header.index(after: colon)..<end]).trimmingCharacters(in: .whitespaces)
    }

    /// Labels name classes 0..<maximumClasses (the class count is the largest label plus one).
    static let maximumClasses = 100_000

    static let integerTypes: [String: Int] = [
        "|u1": 1, "|i1": 1, "<u2": 2, "<i2": 2, "<u4": 4, "<i4": 4, "<u8": 8, "<i8": 8,
    ]

    private static func itemSize(_ descr: String, path: String) throws -> Int {
        if let size = integerTypes[descr] { return size }
        if descr == "<f4" { return 4 }
        if descr == "<f8" { return 8 }
        throw UserError("file \(path): field 'descr' is '\(descr)'; expected an integer type (|u1 for images)")
    }

    /// Little-endian integers of any supported width as Int.
    static func integers(_ array: Array, path: String) throws -> [Int] {
        guard let size = integerTypes[array.descr] else {
            throw UserError(
                "file \(path): field 'descr' is '\(array.descr)'; labels must be integers (|u1, <i4, <i8, ...)")
        }
        let signed = array.descr.contains("i")
        let data = Swift.Array(array.data)
        return (0..<(data.count / size)).map { i in
            var value: UInt64 = 0
            for b in 0..<size { value |= UInt64(data[i * size + b]) << (8 * UInt64(b)) }
            if signed && size < 8 && value & (1 << UInt64(8 * size - 1)) != 0 {
                value |= ~UInt64(0) << UInt64(8 * size)
            }
            return Int(Int64(bitPattern: value))
        }
    }

    /// `train_images.npy`, `train_labels.npy`, `test_images.npy`, `test_labels.npy` in `directory`:
    /// uint8 images (N, H, W) or (N, H, W, C) and integer labels (N).
    static func load(directory: String) throws -> (ImageDataset, ImageDataset) {
        func split(_ prefix: String) throws -> (shape: [Int], pixels: [UInt8], labels: [Int]) {
            let imagesPath = (directory as NSString).appendingPathComponent("\(prefix)_images.npy")
            let labelsPath = (directory as NSString).appendingPathComponent("\(prefix)_labels.npy")
            let images = try read(imagesPath)
            guard images.descr == "|u1" else {
                throw UserError("file \(imagesPath): field 'descr' is '\(images.descr)'; images must be '|u1' (uint8)")
            }
            guard images.shape.count == 3 || (images.shape.count == 4 && (1...4).contains(images.shape[3])) else {
                throw UserError(
                    "file \(imagesPath): field 'shape' is \(images.shape); expected (N, H, W) or (N, H, W, C) with C in 1...4"
                )
            }
            let labelsArray = try read(labelsPath)
            guard labelsArray.shape.count == 1 else {
                throw UserError("file \(labelsPath): field 'shape' is \(labelsArray.shape); expected (N,)")
            }
            let labels = try integers(labelsArray, path: labelsPath)
            guard labels.count == images.shape[0] else {
                throw UserError(
                    "files \(imagesPath) and \(labelsPath): \(images.shape[0]) images but \(labels.count) labels")
            }
            if let bad = labels.firstIndex(where: { $0 < 0 }) {
                throw UserError("file \(labelsPath): label \(labels[bad]) of item \(bad) is negative")
            }
            if let bad = labels.firstIndex(where: { $0 >= maximumClasses }) {
                throw UserError(
                    "file \(labelsPath): label \(labels[bad]) of item \(bad) is not below \(maximumClasses), the most classes sfkd trains"
                )
            }
            let n = images.shape[0], h = images.shape[1], w = images.shape[2]
            let c = images.shape.count == 4 ? images.shape[3] : 1
            let source = Swift.Array(images.data)
            var pixels = [UInt8](repeating: 0, count: n * c * h * w)
            // HWC to CHW.
            for i in 0..<n {
                for y in 0..<h {
                    for x in 0..<w {
                        for k in 0..<c {
                            pixels[((i * c + k) * h + y) * w + x] = source[((i * h + y) * w + x) * c + k]
                        }
                    }
                }
            }
            return ([c, h, w], pixels, labels)
        }
        let train = try split("train"), test = try split("test")
        guard train.shape == test.shape else {
            throw UserError(
                "dataset 'npy' in \(directory): train images are \(train.shape) (C, H, W) but test images \(test.shape)"
            )
        }
        let classes = max(train.labels.max() ?? 0, test.labels.max() ?? 0) + 1
        guard classes >= 2 else {
            throw UserError("dataset 'npy' in \(directory): labels name only \(classes) class; need at least 2")
        }
        return (
            ImageDataset(
                name: "npy", shape: train.shape, classes: classes, pixels: train.pixels,
                labels: train.labels.map(Int32.init)),
            ImageDataset(
                name: "npy", shape: test.shape, classes: classes, pixels: test.pixels,
                labels: test.labels.map(Int32.init))
        )
    }
}
