import Foundation
import Yams

extension TrainingConfig {
    /// Applies a YAML mapping (the contents of `--config FILE`), with `YAMLFile`'s guards.
    public mutating func apply(yaml text: String, source: String) throws {
        try apply(try YAMLFile(text: text, source: source))
    }

    public mutating func apply(yamlFile path: String) throws {
        try apply(try YAMLFile(path: path, kind: "config file"))
    }

    private mutating func apply(_ file: YAMLFile) throws {
        for key in file.mapping.keys.sorted() {
            try set(key, to: file.mapping[key]!, source: file.source)
        }
    }

    /// The resolved config as YAML, every key listed (unset optional ones as null).
    public func yaml() throws -> String {
        var mapping: [String: Any] = [:]
        for key in Self.keys {
            switch key.get(self) {
            case let .double(v): mapping[key.spec.name] = ExactDouble(value: v)
            case let .numbers(v): mapping[key.spec.name] = v.map(ExactDouble.init)
            case let value: mapping[key.spec.name] = value.plain
            }
        }
        return try Yams.dump(object: mapping, sortKeys: true)
    }
}

/// A number written with the shortest digits that read back to the same Double (Yams writes
/// 15 significant digits, so 4/3 would come back changed and a resume would see a new value).
private struct ExactDouble: NodeRepresentable {
    let value: Double
    func represented() throws -> Node { Node(String(value), Tag(.float)) }
}
