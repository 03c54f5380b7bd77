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
        var table: [(spec: SettingSpec, methods: [String])] = []
        for method in methods {
            for spec in method.settings {
                if let index = table.firstIndex(where: { $0.spec.name == spec.name }) {
                    table[index].methods.append(method.name)
                } else {
                    table.append((spec, [method.name]))
                }
            }
        }
        return table
    }()

    /// Builds `name` for a run.
    public static func make(_ name: String, context: MethodContext) throws -> any DistillationMethod {
        try method(named: name).init(context: context)
    }
}
