import Foundation

/// A setting's value as YAML, flags and the saved config carry it.
public enum SettingValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case ints([Int])
    case numbers([Double])

    /// The value as Yams and JSONSerialization take it.
    public var plain: Any {
        switch self {
        case .null: return NSNull()
        case let .bool(v): return v
        case let .int(v): return v
        case let .double(v): return v
        case let .string(v): return v
        case let .ints(v): return v
        case let .numbers(v): return v
        }
    }

    public var text: String {
        switch self {
        case .null: return "null"
        case let .bool(v): return String(v)
        case let .int(v): return String(v)
        case let .double(v): return String(v)
        case let .string(v): return v
        case let .ints(v): return v.map(String.init).joined(separator: ",")
        case let .numbers(v): return v.map { String($0) }.joined(separator: ",")
        }
    }
}

/// The values a number setting accepts; NaN and infinities never pass.
public struct SettingRange: Sendable, Equatable {
    public var minimum: Double?
    public var minimumIsExclusive = false
    public var maximum: Double?
    public var maximumIsExclusive = false

    public init(
        minimum: Double? = nil, minimumIsExclusive: Bool = false, maximum: Double? = nil,
        maximumIsExclusive: Bool = false
    ) {
        self.minimum = minimum
        self.minimumIsExclusive = minimumIsExclusive
        self.maximum = maximum
        self.maximumIsExclusive = maximumIsExclusive
    }

    public static let positive = SettingRange(minimum: 0, minimumIsExclusive: true)
    public static let nonNegative = SettingRange(minimum: 0)
    public static func atLeast(_ value: Double) -> SettingRange { SettingRange(minimum: value) }
    public static func between(_ low: Double, _ high: Double, upperExclusive: Bool = false) -> SettingRange {
        SettingRange(minimum: low, maximum: high, maximumIsExclusive: upperExclusive)
    }

    public func contains(_ x: Double) -> Bool {
        guard x.isFinite else { return false }
        if let minimum {
            if minimumIsExclusive ? x <= minimum : x < minimum { return false }
        }
        if let maximum {
            if maximumIsExclusive ? x >= maximum : x > maximum { return false }
        }
        return true
    }

    /// "at least 1", "positive", "in [0, 1)".
    public var phrase: String {
        func number(_ x: Double) -> String { x == x.rounded() && Swift.abs(x) < 1e17 ? String(Int(x)) : String(x) }
        if let low = minimum, let high = maximum {
            let open: String = minimumIsExclusive ? "(" : "["
            let close: String = maximumIsExclusive ? ")" : "]"
            return "in " + open + number(low) + ", " + number(high) + close
        }
        if let low = minimum {
            if low == 0 && minimumIsExclusive { return "positive" }
            let words: String = minimumIsExclusive ? "greater than " : "at least "
            return words + number(low)
        }
        if let high = maximum {
            let words: String = maximumIsExclusive ? "less than " : "at most "
            return words + number(high)
        }
        return "finite"
    }
}

/// One setting, declared once: its YAML key (snake_case; the flag is the kebab-case of it), type,
/// default, accepted range and help. Config files, flags, `--help` and the saved config are all
/// derived from these declarations.
public struct SettingSpec: Sendable {
    public enum Kind: Sendable, Equatable {
        case bool, int, float, double, string, ints
        /// A fixed count of numbers, such as a (low, high) pair.
        case numbers(count: Int)
        case choice([String])
    }

    public let name: String
    public let kind: Kind
    /// Whether null is a value (unset: "use the default rule" or "off").
    public let isOptional: Bool
    public let defaultValue: SettingValue
    public let range: SettingRange?
    public let help: String

    public init(
        name: String, kind: Kind, isOptional: Bool, defaultValue: SettingValue, range: SettingRange? = nil, help: String
    ) {
        self.name = name
        self.kind = kind
        self.isOptional = isOptional
        self.defaultValue = defaultValue
        self.range = range
        self.help = help
    }

    public var flag: String { "--" + name.replacingOccurrences(of: "_", with: "-") }

    /// The help line: the text, `note`, then the facts in parentheses (the default when
    /// `showingDefault`, the range, and `extra` ones such as the methods that read it).
    public func helpText(note: String? = nil, showingDefault: Bool, extra: [String] = []) -> String {
        var facts: [String] = []
        if showingDefault, defaultValue != .null { facts.append("default \(defaultValue.text)") }
        if let range { facts.append(range.phrase) }
        facts += extra
        let text = [help, note].compactMap { $0 }.joined(separator: " ")
        return text + (facts.isEmpty ? "" : " (" + facts.joined(separator: "; ") + ")")
    }

    /// What the value looks like, for errors and help.
    public var expected: String {
        switch kind {
        case .bool: return "true or false"
        case .int: return "an integer"
        case .float, .double: return "a number"
        case .string: return "a string"
        case .ints: return "a list of integers such as -2,-1"
        case let .numbers(count): return "\(count) comma-separated numbers"
        case let .choice(options): return "one of " + options.joined(separator: ", ")
        }
    }

    /// Reads a YAML value or a flag's text; throws `SettingTypeError` for a value of another type.
    public func parse(_ raw: Any) throws -> SettingValue {
        if raw is NSNull {
            guard isOptional else { throw SettingTypeError(expected: expected) }
            return .null
        }
        if isOptional, let text = raw as? String, ["null", "~"].contains(text.lowercased()) { return .null }
        if let value = Self.convert(raw, to: kind) { return value }
        throw SettingTypeError(expected: expected)
    }

    private static func integer(_ raw: Any) -> Int? {
        if let v = raw as? Int { return v }
        if let v = raw as? String { return Int(v.trimmingCharacters(in: .whitespaces)) }
        if let v = raw as? Double, v == v.rounded(), Swift.abs(v) < 1e15 { return Int(v) }
        return nil
    }

    private static func convert(_ raw: Any, to kind: Kind) -> SettingValue? {
        switch kind {
        case .bool:
            if let v = raw as? Bool { return .bool(v) }
            guard let text = raw as? String else { return nil }
            switch text.lowercased() {
            case "true", "yes", "on", "1": return .bool(true)
            case "false", "no", "off", "0": return .bool(false)
            default: return nil
            }
        case .int:
            return integer(raw).map(SettingValue.int)
        case .float, .double:
            var number: Double?
            if let v = raw as? Double { number = v }
            if let v = raw as? Int { number = Double(v) }
            if let v = raw as? String { number = Double(v.trimmingCharacters(in: .whitespaces)) }
            guard let number else { return nil }
            return .double(kind == .float ? Double(Float(number)) : number)
        case .string:
            return (raw as? String).map(SettingValue.string)
        case .ints:
            if let list = raw as? [Any] {
                let values = list.compactMap(integer)
                return values.count == list.count ? .ints(values) : nil
            }
            if let text = raw as? String {
                let values = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
                return !values.isEmpty && values.count == text.split(separator: ",").count ? .ints(values) : nil
            }
            return integer(raw).map { .ints([$0]) }
        case let .numbers(count):
            let parts: [Any] = (raw as? [Any]) ?? ((raw as? String)?.split(separator: ",").map { String($0) } ?? [raw])
            let values = parts.compactMap { convert($0, to: .double) }.compactMap { value -> Double? in
                if case let .double(v) = value { return v }
                return nil
            }
            return values.count == parts.count && values.count == count ? .numbers(values) : nil
        case let .choice(options):
            guard let text = raw as? String, options.contains(text) else { return nil }
            return .string(text)
        }
    }

    /// Checks a value's range; the message names the key and the accepted range.
    public func check(_ value: SettingValue, source: String = "config") throws {
        guard let range else { return }
        let numbers: [Double]
        switch value {
        case let .int(v): numbers = [Double(v)]
        case let .double(v): numbers = [v]
        case let .numbers(v): numbers = v
        default: return
        }
        guard numbers.allSatisfy(range.contains) else {
            throw UserError(
                "\(source): '\(name)' must be \(numbers.count > 1 ? "numbers each " : "")\(range.phrase), found \(value.text)"
            )
        }
    }
}

public struct SettingTypeError: Error {
    public let expected: String

    public init(expected: String) { self.expected = expected }
}

/// A Swift type a setting can hold.
public protocol SettingConvertible: Equatable, Sendable {
    static var settingKind: SettingSpec.Kind { get }
    static var isOptionalSetting: Bool { get }
    init?(settingValue: SettingValue)
    var settingValue: SettingValue { get }
}

extension SettingConvertible {
    public static var isOptionalSetting: Bool { false }
}

extension Bool: SettingConvertible {
    public static var settingKind: SettingSpec.Kind { .bool }
    public init?(settingValue: SettingValue) {
        guard case let .bool(v) = settingValue else { return nil }
        self = v
    }
    public var settingValue: SettingValue { .bool(self) }
}

extension Int: SettingConvertible {
    public static var settingKind: SettingSpec.Kind { .int }
    public init?(settingValue: SettingValue) {
        guard case let .int(v) = settingValue else { return nil }
        self = v
    }
    public var settingValue: SettingValue { .int(self) }
}

extension Double: SettingConvertible {
    public static var settingKind: SettingSpec.Kind { .double }
    public init?(settingValue: SettingValue) {
        switch settingValue {
        case let .double(v): self = v
        case let .int(v): self = Double(v)
        default: return nil
        }
    }
    public var settingValue: SettingValue { .double(self) }
}

extension Float: SettingConvertible {
    public static var settingKind: SettingSpec.Kind { .float }
    public init?(settingValue: SettingValue) {
        guard let v = Double(settingValue: settingValue) else { return nil }
        self = Float(v)
    }
    public var settingValue: SettingValue { .double(Double(self)) }
}

extension String: SettingConvertible {
    public static var settingKind: SettingSpec.Kind { .string }
    public init?(settingValue: SettingValue) {
        guard case let .string(v) = settingValue else { return nil }
        self = v
    }
    public var settingValue: SettingValue { .string(self) }
}

extension Array: SettingConvertible where Element == Int {
    public static var settingKind: SettingSpec.Kind { .ints }
    public init?(settingValue: SettingValue) {
        guard case let .ints(v) = settingValue else { return nil }
        self = v
    }
    public var settingValue: SettingValue { .ints(self) }
}

/// Two numbers, low then high (timm's `scale` and `ratio`).
public struct NumberPair: SettingConvertible, Equatable, Sendable {
    public var low: Double, high: Double
    public init(_ low: Double, _ high: Double) {
        self.low = low
        self.high = high
    }
    public static var settingKind: SettingSpec.Kind { .numbers(count: 2) }
    public init?(settingValue: SettingValue) {
        guard case let .numbers(v) = settingValue, v.count == 2 else { return nil }
        self.init(v[0], v[1])
    }
    public var settingValue: SettingValue { .numbers([low, high]) }
}

extension Optional: SettingConvertible where Wrapped: SettingConvertible {
    public static var settingKind: SettingSpec.Kind { Wrapped.settingKind }
    public static var isOptionalSetting: Bool { true }
    public init?(settingValue: SettingValue) {
        if settingValue == .null {
            self = .none
            return
        }
        guard let v = Wrapped(settingValue: settingValue) else { return nil }
        self = .some(v)
    }
    public var settingValue: SettingValue {
        guard let wrapped = self else { return .null }
        return wrapped.settingValue
    }
}

/// A closed set of names (an enum with string raw values) as a setting.
public protocol SettingChoice: SettingConvertible, CaseIterable, RawRepresentable where RawValue == String {}

extension SettingChoice {
    public static var settingKind: SettingSpec.Kind { .choice(allCases.map(\.rawValue)) }
    public init?(settingValue: SettingValue) {
        guard case let .string(v) = settingValue, let parsed = Self(rawValue: v) else { return nil }
        self = parsed
    }
    public var settingValue: SettingValue { .string(rawValue) }
}

/// A typed handle on a declared setting: methods read their values through it.
public struct Setting<Value: SettingConvertible>: Sendable {
    public let spec: SettingSpec
    public let defaultValue: Value

    public init(_ name: String, default defaultValue: Value, range: SettingRange? = nil, help: String) {
        self.defaultValue = defaultValue
        spec = SettingSpec(
            name: name, kind: Value.settingKind, isOptional: Value.isOptionalSetting,
            defaultValue: defaultValue.settingValue, range: range, help: help)
    }
}

/// Values of declared settings by name. Only values that differ from their defaults are kept,
/// so two collections holding the same effective values are equal.
public struct SettingValues: Equatable, Sendable {
    private var values: [String: SettingValue] = [:]

    public init() {}

    public subscript<Value>(setting: Setting<Value>) -> Value {
        get { values[setting.spec.name].flatMap { Value(settingValue: $0) } ?? setting.defaultValue }
        set { set(setting.spec, to: newValue.settingValue) }
    }

    public func value(of spec: SettingSpec) -> SettingValue { values[spec.name] ?? spec.defaultValue }

    /// The names of the settings given a value other than their default.
    public var changedNames: [String] { values.keys.sorted() }

    public mutating func set(_ spec: SettingSpec, to value: SettingValue) {
        values[spec.name] = value == spec.defaultValue ? nil : value
    }
}
