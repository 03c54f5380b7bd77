import Foundation
import ModelFiles
import Settings
import Tensors

/// Appends one JSON object per line to `metrics.jsonl`.
final class MetricsLog {
    private let handle: FileHandle
    let path: String

    /// Opens `path` for appending. With `keepingUpTo`, lines of steps after that one (those a
    /// resumed run is about to train again) are cut first, so no step appears twice.
    init(path: String, keepingUpTo step: Int? = nil) throws {
        self.path = path
        if let step, let data = FileManager.default.contents(atPath: path) {
            // A line a crash cut short (no newline after it) is dropped; every other line must read.
            let newline = UInt8(ascii: "\n")
            let end =
                data.last == newline ? data.endIndex : data.lastIndex(of: newline).map { $0 + 1 } ?? data.startIndex
            let lines = data[..<end].split(separator: newline, omittingEmptySubsequences: true)
            let records = try MetricsRecord.records(Data(data[..<end]), file: path)
            var kept = Data()
            for (line, record) in zip(lines, records) where record.step <= step {
                kept.append(contentsOf: line)
                kept.append(newline)
            }
            try writeAtomically(kept, to: path)
        }
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw UserError("cannot create \(path) (is the folder writable?)")
            }
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw UserError("cannot open \(path) for writing")
        }
        handle.seekToEndOfFile()
        self.handle = handle
    }

    /// The records written so far (after any cut), in order.
    func records() throws -> [MetricsRecord] { try MetricsRecord.read(path) }

    /// Appends `record`.
    func append(_ record: MetricsRecord) throws {
        var data = try record.line()
        data.append(UInt8(ascii: "\n"))
        do {
            try handle.write(contentsOf: data)
        } catch {
            throw UserError(
                "writing \(path) failed (\(describeWriteError(error))); the last complete checkpoint is intact")
        }
    }

    deinit { try? handle.close() }
}
