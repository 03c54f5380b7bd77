import Settings
import Tensors

/// Keyword arguments of a model constructor, as `timm.create_model(name, **kwargs)` takes them
/// (`layers`, `channels`, ...). Written as space-separated `key=value` pairs, lists
/// comma-separated: `layers=1,1,1,1 channels=8,16,32,64 stem=cifar`. That text, with the keys
/// sorted, is what the config and the model metadata record.
public struct ModelArguments: Equatable, Sendable {
    public private(set) var values: [String: String] = [:]

    public init() {}

    public init(_ text: String) throws {
        for pair in text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }) {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex,
                pair.index(after: equals) != pair.endIndex
            else {
                throw UserError("model arguments: '\(pair)' is not key=value (for example layers=2,2,2,2 stem=cifar)")
            }
            let key = String(pair[..<equals]), value = String(pair[pair.index(after: equals)...])
            guard values[key] == nil else { throw UserError("model arguments: '\(key)' is given twice") }
            values[key] = value
        }
    }

    public var isEmpty: Bool { values.isEmpty }

    /// The canonical text: keys sorted.
    public var text: String { values.keys.sorted().map { "\($0)=\(values[$0]!)" }.joined(separator: " ") }

    /// Refuses keys the model does not take, listing those it does.
    func check(accepted: [String], model: String) throws {
        let unknown = values.keys.filter { !accepted.contains($0) }.sorted()
        guard unknown.isEmpty else {
            throw UserError(
                "model '\(model)' does not take the argument\(unknown.count > 1 ? "s" : "") \(unknown.joined(separator: ", ")); it takes \(accepted.isEmpty ? "none" : accepted.joined(separator: ", "))"
            )
        }
    }

    func integers(_ key: String, default fallback: [Int], count: Int? = nil, range: ClosedRange<Int> = 1...65_536)
        throws -> [Int]
    {
        guard let text = values[key] else { return fallback }
        let expected =
            "expected \(count.map { "\($0) " } ?? "")comma-separated integers in \(range.lowerBound)...\(range.upperBound)"
        // Every item counts: "1,,1" is a mistake, never the list 1,1.
        let items = text.split(separator: ",", omittingEmptySubsequences: false)
        for (position, item) in items.enumerated() where !(Int(item).map(range.contains) ?? false) {
            let what =
                item.isEmpty ? "is empty" : "'\(item)' is not an integer in \(range.lowerBound)...\(range.upperBound)"
            throw UserError("model argument '\(key)' is '\(text)': item \(position + 1) \(what); \(expected)")
        }
        guard count.map({ items.count == $0 }) ?? true else {
            throw UserError("model argument '\(key)' is '\(text)': \(items.count) items; \(expected)")
        }
        return items.map { Int($0)! }
    }

    func number(_ key: String, default fallback: Double) throws -> Double {
        guard let text = values[key] else { return fallback }
        guard let value = Double(text), value.isFinite, value > 0, value <= 64 else {
            throw UserError("model argument '\(key)' is '\(text)'; expected a number in (0, 64]")
        }
        return value
    }

    /// A probability in [0, 1) (`fallback`, 0 unless given, when absent).
    func fraction(_ key: String, default fallback: Double = 0) throws -> Double {
        guard let text = values[key] else { return fallback }
        guard let value = Double(text), value >= 0, value < 1 else {
            throw UserError("model argument '\(key)' is '\(text)'; expected a number in [0, 1)")
        }
        return value
    }

    func choice(_ key: String, default fallback: String, options: [String]) throws -> String {
        guard let text = values[key] else { return fallback }
        guard options.contains(text) else {
            throw UserError("model argument '\(key)' is '\(text)'; expected one of \(options.joined(separator: ", "))")
        }
        return text
    }
}
