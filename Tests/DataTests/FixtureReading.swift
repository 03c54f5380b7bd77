import Foundation
import XCTest

/// Reads a safetensors file of float32 tensors (the image fixtures' format) without the
/// Training module.
func readFloatTensors(_ path: String) throws -> [String: (shape: [Int], values: [Float])] {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    let headerLength = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    let header = try XCTUnwrap(
        try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerLength)])) as? [String: Any])
    var result: [String: (shape: [Int], values: [Float])] = [:]
    for (key, entry) in header where key != "__metadata__" {
        let info = try XCTUnwrap(entry as? [String: Any])
        XCTAssertEqual(info["dtype"] as? String, "F32")
        let offsets = try XCTUnwrap(info["data_offsets"] as? [Int]), shape = try XCTUnwrap(info["shape"] as? [Int])
        let start = 8 + headerLength + offsets[0]
        let values = stride(from: start, to: 8 + headerLength + offsets[1], by: 4).map { i in
            Float(
                bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(
                    bytes[i + 3]) << 24)
        }
        result[key] = (shape, values)
    }
    return result
}

/// The largest difference between 8-bit pixels and reference values.
func pixelDifference(_ pixels: [UInt8], _ reference: [Float]) -> Float {
    XCTAssertEqual(pixels.count, reference.count)
    return zip(pixels, reference).map { Swift.abs(Float($0) - $1) }.max() ?? 0
}
