import Settings
import Tensors

/// Every distillation method by name, as `ModelRegistry` lists models. Adding a method is one
/// file with its type and one line here.
public enum MethodRegistry {
    public static let methods: [any DistillationMethod.Type] = [
        CrossEntropyOnly.self, KD.self, DKD.self, FitNet.self, OFA.self, SFKD.self,
    ]

    public static var names: [String] { methods.map { $0.name } }

    public static func method(named name: String) throws -> any DistillationMethod.Type {
        guard let method = methods.first(where: { $0.name == name }) else {
            throw UserError("unknown method '\(name)'; valid methods: \(names.joined(separator: ", "))")
        }
        return method
    }

    /// Every method's settings once, in registry order, with the methods that read each.
    /// Two methods that declare a setting of the same name share one declaration.
    public static let settings: [(spec: SettingSpec, methods: [String])] = {
        do {
            return try settingsTable(methods, reserved: [])
        } catch {
            fatalError("\(error)")  // a registration mistake, which MethodRegistryTests name
        }
    }()

    /// The settings table of `methods`. Refuses a setting named like one of `reserved` (the
    /// training keys: it would be shadowed), two declarations of one name that differ in type,
    /// default or range (one key must mean one thing), and a method name given twice.
    public static func settingsTable(_ methods: [any DistillationMethod.Type], reserved: Set<String>) throws -> [(
        spec: SettingSpec, methods: [String]
    )] {
        var table: [(spec: SettingSpec, methods: [String])] = []
        var names = Set<String>()
        for method in methods {
            guard names.insert(method.name).inserted else {
                throw MethodRegistrationError("two methods are named '\(method.name)'")
            }
            for spec in method.settings {
                guard !reserved.contains(spec.name) else {
                    throw MethodRegistrationError(
                        "method '\(method.name)' declares the setting '\(spec.name)', which is a training key; name it after the method"
                    )
                }
                if let index = table.firstIndex(where: { $0.spec.name == spec.name }) {
                    let other = table[index].spec
                    guard other.kind == spec.kind, other.defaultValue == spec.defaultValue, other.range == spec.range
                    else {
                        throw MethodRegistrationError(
                            "methods '\(table[index].methods[0])' and '\(method.name)' declare '\(spec.name)' differently; share one declaration (SharedSettings)"
                        )
                    }
                    table[index].methods.append(method.name)
                } else {
                    table.append((spec, [method.name]))
                }
            }
        }
        return table
    }

    /// Builds `name` for a run.
    public static func make(_ name: String, context: MethodContext) throws -> any DistillationMethod {
        try method(named: name).init(context: context)
    }
}

/// A method that cannot be registered as declared (a programming error, found by the tests).
public struct MethodRegistrationError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
