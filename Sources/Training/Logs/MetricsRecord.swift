import Foundation
import Settings
import Tensors

/// One line of `metrics.jsonl`: a window of training steps (`train`) or an epoch's evaluation
/// (`eval`), at a step and epoch, with its numbers by name (`loss`, `loss_<term>`, `val_top1`,
/// ...). Written by `JSONEncoder` (the shortest digits that read back to the same double) and
/// read by `JSONDecoder`, so every number reads back bit for bit; Foundation's
/// `JSONSerialization` parser on Linux does not (it can miss the last bit).
public struct MetricsRecord: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable {
        case train, eval
    }

    public var kind: Kind
    public var step: Int
    public var epoch: Int
    public var values: [String: Double]

    public init(kind: Kind, step: Int, epoch: Int, values: [String: Double] = [:]) {
        self.kind = kind
        self.step = step
        self.epoch = epoch
        self.values = values
    }

    public subscript(name: String) -> Double? {
        get { values[name] }
        set { values[name] = newValue }
    }

    /// The flat object the file holds: `kind`, `step`, `epoch` and the numbers side by side.
    private struct Key: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
    private static let fixed: Set<String> = ["kind", "step", "epoch"]

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        kind = try container.decode(Kind.self, forKey: Key("kind"))
        step = try container.decode(Int.self, forKey: Key("step"))
        epoch = try container.decode(Int.self, forKey: Key("epoch"))
        values = [:]
        for key in container.allKeys where !Self.fixed.contains(key.stringValue) {
            values[key.stringValue] = try container.decode(Double.self, forKey: key)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(kind, forKey: Key("kind"))
        try container.encode(step, forKey: Key("step"))
        try container.encode(epoch, forKey: Key("epoch"))
        for (name, value) in values { try container.encode(value, forKey: Key(name)) }
    }

    /// The line `metrics.jsonl` holds for this record (keys sorted, no newline).
    public func line() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(self)
    }

    /// The records of a `metrics.jsonl` file's text, in order; `file` names it in errors.
    public static func records(_ data: Data, file: String) throws -> [MetricsRecord] {
        let decoder = JSONDecoder()
        return try data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).enumerated().map {
            index, line in
            do {
                return try decoder.decode(MetricsRecord.self, from: Data(line))
            } catch {
                throw UserError("\(file): line \(index + 1) is not a metrics record (\(describeDecodingError(error)))")
            }
        }
    }

    /// The records of the `metrics.jsonl` file at `path`.
    public static func read(_ path: String) throws -> [MetricsRecord] {
        guard let data = FileManager.default.contents(atPath: path) else { throw UserError("cannot read \(path)") }
        return try records(data, file: path)
    }
}
