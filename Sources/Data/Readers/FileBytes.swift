import CZlib
import Foundation
import Settings
import Tensors

/// Reads a whole file, through zlib when it is gzip-compressed (by content, not by name).
func readFileBytes(_ path: String) throws -> [UInt8] {
    guard FileManager.default.fileExists(atPath: path) else { throw UserError("file \(path) not found") }
    guard let handle = FileHandle(forReadingAtPath: path) else {
        throw UserError("file \(path) cannot be opened for reading")
    }
    let head = handle.readData(ofLength: 2)
    try? handle.close()
    if head.count == 2 && head[head.startIndex] == 0x1f && head[head.startIndex + 1] == 0x8b {
        return try gunzip(path)
    }
    guard let data = FileManager.default.contents(atPath: path) else { throw UserError("file \(path) cannot be read") }
    return [UInt8](data)
}

private func gunzip(_ path: String) throws -> [UInt8] {
    guard let file = gzopen(path, "rb") else { throw UserError("file \(path): gzip stream cannot be opened") }
    defer { gzclose(file) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let read = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
        if read < 0 {
            var code: Int32 = 0
            let message = gzerror(file, &code).map { String(cString: $0) } ?? "unknown error"
            throw UserError("file \(path): corrupt gzip data after \(result.count) decompressed bytes (\(message))")
        }
        if read == 0 { break }
        guard result.count + Int(read) <= maximumDecompressedBytes else {
            throw UserError(
                "file \(path): decompresses to more than \(maximumDecompressedBytes >> 30) GiB; not a dataset file sfkd reads"
            )
        }
        result.append(contentsOf: chunk[0..<Int(read)])
    }
    // gzread stops quietly at a truncated end; zlib reports it through gzerror.
    var code: Int32 = 0
    let message = gzerror(file, &code).map { String(cString: $0) } ?? ""
    if code != Z_OK && code != Z_STREAM_END {
        throw UserError(
            "file \(path): gzip stream is truncated or corrupt after \(result.count) decompressed bytes (\(message))")
    }
    return result
}

/// Largest decompressed `.gz` input: the biggest dataset file sfkd reads is far smaller, and a
/// small compressed file must not expand into all of memory.
let maximumDecompressedBytes = 4 << 30

/// Big-endian 32-bit integer at `offset`.
func bigEndianUInt32(_ bytes: [UInt8], _ offset: Int) -> Int {
    Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
}
