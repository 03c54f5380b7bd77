import Foundation
import Settings
import Tensors

/// The safetensors format: an 8-byte little-endian header length, a JSON header mapping each
/// name to dtype, shape and byte range (plus a string-to-string `__metadata__`), then the raw
/// little-endian data. Readable by `safetensors.numpy.load_file` and PyTorch's loaders.
public enum SafeTensors {
    /// Writes atomically: to a temporary name, fsync, then rename, so a crash never leaves a
    /// half-written file under the final name.
    public static func write(_ tensors: [(String, Tensor)], metadata: [String: String] = [:], to path: String) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for (name, tensor) in tensors {
            guard header[name] == nil else {
                throw UserError("safetensors \(path): tensor name '\(name)' appears twice")
            }
            header[name] = [
                "dtype": "F32", "shape": tensor.shape, "data_offsets": [offset, offset + tensor.count * 4],
            ]
            offset += tensor.count * 4
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces to a multiple of 8 bytes, as the reference writer does.
        while (json.count + 8) % 8 != 0 { json.append(0x20) }
        var file = Data()
        var length = UInt64(json.count).littleEndian
        file.append(Data(bytes: &length, count: 8))
        file.append(json)
        for (_, tensor) in tensors {
            file.append(Data(bytes: tensor.data, count: tensor.count * 4))
        }
        try writeAtomically(file, to: path)
    }

    /// Element types read, as float32 (PyTorch's half and bfloat16 weights, int64 counters such
    /// as `num_batches_tracked`); sfkd writes F32.
    static let elementBytes = ["F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4]

    /// Little-endian elements of `dtype` at `source` as float32.
    static func convert(_ source: UnsafeRawPointer, dtype: String, count: Int, into target: UnsafeMutablePointer<Float>)
    {
        switch dtype {
        case "F16":
            for i in 0..<count {
                target[i] = Float(
                    Float16(
                        bitPattern: UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
            }
        case "BF16":
            for i in 0..<count {
                target[i] = Float(
                    bitPattern: UInt32(
                        UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
            }
        case "F64":
            for i in 0..<count {
                target[i] = Float(
                    Double(
                        bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
            }
        case "I64":
            for i in 0..<count {
                target[i] = Float(Int64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
            }
        case "I32":
            for i in 0..<count {
                target[i] = Float(Int32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
            }
        default: memcpy(target, source, 4 * count)
        }
    }

    public struct Contents {
        public let tensors: [String: Tensor]
        /// Names in file order.
        public let names: [String]
        public let metadata: [String: String]
    }

    public static func read(_ path: String) throws -> Contents {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UserError("safetensors file \(path) not found or unreadable")
        }
        guard data.count >= 8 else {
            throw UserError("safetensors file \(path): \(data.count) bytes, too short for the 8-byte header length")
        }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) {
            $0 | UInt64($1.element) << (8 * UInt64($1.offset))
        }
        guard headerLength <= UInt64(data.count - 8), headerLength <= 100 << 20 else {
            throw UserError(
                "safetensors file \(path): header length \(headerLength) at offset 0 exceeds the file (\(data.count) bytes); truncated or not safetensors"
            )
        }
        let headerData = data.subdata(in: 8..<(8 + Int(headerLength)))
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw UserError(
                "safetensors file \(path): the header (offset 8, \(headerLength) bytes) is not a JSON object")
        }
        let base = 8 + Int(headerLength)
        let dataBytes = data.count - base
        // Every size and offset comes from the file: checked for overflow, order and against the
        // bytes present before anything is allocated from it.
        var entries: [(name: String, dtype: String, shape: [Int], start: Int, end: Int)] = []
        for (name, value) in header where name != "__metadata__" {
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
            else {
                throw UserError("safetensors file \(path): entry '\(name)' lacks dtype, shape or data_offsets")
            }
            guard let width = Self.elementBytes[dtype] else {
                throw UserError(
                    "safetensors file \(path): tensor '\(name)' has dtype \(dtype); sfkd reads \(Self.elementBytes.keys.sorted().joined(separator: ", "))"
                )
            }
            guard let count = checkedProduct(shape), let bytes = checkedProduct([count, width]) else {
                throw UserError(
                    "safetensors file \(path): tensor '\(name)' has shape \(shape), with a negative or impossibly large size"
                )
            }
            let (start, end) = (offsets[0], offsets[1])
            guard start >= 0, start <= end, end <= dataBytes, end - start == bytes else {
                throw UserError(
                    "safetensors file \(path): tensor '\(name)' of shape \(shape) (\(bytes) bytes) has data_offsets \(offsets), which do not fit the \(dataBytes) data bytes (truncated or corrupt)"
                )
            }
            entries.append((name, dtype, shape, start, end))
        }
        entries.sort { ($0.start, $0.end) < ($1.start, $1.end) }
        for (previous, next) in zip(entries, entries.dropFirst()) where next.start < previous.end {
            throw UserError(
                "safetensors file \(path): tensors '\(previous.name)' (bytes \(previous.start)..<\(previous.end)) and '\(next.name)' (\(next.start)..<\(next.end)) overlap"
            )
        }
        var tensors: [String: Tensor] = [:]
        for entry in entries {
            let tensor = Tensor(zeros: entry.shape)
            data.withUnsafeBytes { raw in
                Self.convert(
                    raw.baseAddress! + base + entry.start, dtype: entry.dtype, count: tensor.count, into: tensor.data)
            }
            tensors[entry.name] = tensor
        }
        let metadata = header["__metadata__"] as? [String: String] ?? [:]
        return Contents(tensors: tensors, names: entries.map(\.name), metadata: metadata)
    }
}

/// Writes `data` to `path` through a temporary file, fsync and rename.
public func writeAtomically(_ data: Data, to path: String) throws {
    let temporary = path + ".tmp-\(getpid())"
    guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
        throw UserError("cannot create \(temporary) (is the folder writable?)")
    }
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
    do {
        try handle.write(contentsOf: data)
        try handle.synchronize()
        try handle.close()
    } catch {
        try? handle.close()
        try? FileManager.default.removeItem(atPath: temporary)
        throw UserError("writing \(path) failed (\(describeWriteError(error)))")
    }
    guard rename(temporary, path) == 0 else {
        let reason = String(cString: strerror(errno))
        try? FileManager.default.removeItem(atPath: temporary)
        throw UserError("cannot move \(temporary) to \(path): \(reason)")
    }
}
