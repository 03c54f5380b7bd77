import Foundation
import Tensors

/// Appends one JSON object per line to `metrics.jsonl`.
final class MetricsLog {
    private let handle: FileHandle

    init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: path) else { throw UserError("cannot open \(path) for writing") }
        handle.seekToEndOfFile()
        self.handle = handle
    }

    func append(_ record: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) else { return }
        handle.write(data)
        handle.write("\n".data(using: .utf8)!)
    }

    deinit { try? handle.close() }
}
