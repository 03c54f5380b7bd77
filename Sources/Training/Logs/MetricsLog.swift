import Foundation
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
            var kept = Data()
            for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
                let record = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any]
                if let recordStep = record?["step"] as? Int, recordStep > step { continue }
                kept.append(contentsOf: line)
                kept.append(UInt8(ascii: "\n"))
            }
            try writeAtomically(kept, to: path)
        }
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else { throw UserError("cannot create \(path) (is the folder writable?)") }
        }
        guard let handle = FileHandle(forWritingAtPath: path) else { throw UserError("cannot open \(path) for writing") }
        handle.seekToEndOfFile()
        self.handle = handle
    }

    /// The records written so far (after any cut), in order.
    func records() throws -> [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0))) as? [String: Any]
        }
    }

    /// Appends `record` and returns its line as written (without the newline).
    @discardableResult
    func append(_ record: [String: Any]) throws -> Data {
        var data = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
        let line = data
        data.append(UInt8(ascii: "\n"))
        do {
            try handle.write(contentsOf: data)
        } catch {
            throw UserError("writing \(path) failed (\(describeWriteError(error))); the last complete checkpoint is intact")
        }
        return line
    }

    deinit { try? handle.close() }
}
