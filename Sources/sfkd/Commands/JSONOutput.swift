import Foundation

/// `--json` output: one object on stdout, keys sorted, so scripts can read it.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    FileHandle.standardOutput.write(try encoder.encode(value))
    FileHandle.standardOutput.write("\n".data(using: .utf8)!)
}

/// Human output goes to stderr, leaving stdout to machine-readable results.
func report(_ line: String) {
    FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
}
