import Distill
import Foundation
import Models
import Settings

/// One configuration key: its declaration and where its value lives in `TrainingConfig`.
public struct ConfigKey {
    public let spec: SettingSpec
    /// The heading it is listed under in `--help`.
    public let section: String
    let get: (TrainingConfig) -> SettingValue
    let set: (inout TrainingConfig, SettingValue) -> Void
    /// Reads a YAML value or flag text when the spec's own parsing does not fit (a mapping).
    var parse: ((Any) throws -> SettingValue)?
}

/// `model_args`: a YAML mapping (`{layers: [2, 2, 2, 2], stem: cifar}`) or `key=value` text, kept
/// as the canonical text of `ModelArguments`.
let modelArgumentsKey: ConfigKey = {
    var key = field(
        "model_args", \.modelArguments, "model and data",
        help:
            "Model keyword arguments as timm.create_model takes them: 'layers=1,1,1,1 channels=32,64,128,256 stem=cifar' (sfkd info lists what each model takes)."
    )
    key.parse = { raw in
        if let mapping = raw as? [String: Any] {
            let pairs = try mapping.keys.sorted().map { name -> String in
                let value = mapping[name]!
                if let list = value as? [Any] { return "\(name)=" + list.map { "\($0)" }.joined(separator: ",") }
                if value is [String: Any] {
                    throw SettingTypeError(expected: "key: value pairs with numbers, names or lists")
                }
                return "\(name)=\(value)"
            }
            return .string(try ModelArguments(pairs.joined(separator: " ")).text)
        }
        guard let text = raw as? String else { throw SettingTypeError(expected: "key=value pairs or a mapping") }
        return .string(try ModelArguments(text).text)
    }
    return key
}()

/// A training key stored in a field of `TrainingConfig`; its default is the field's initial value.
func field<T: SettingConvertible>(
    _ name: String, _ path: WritableKeyPath<TrainingConfig, T>, _ section: String,
    range: SettingRange? = nil, kind: SettingSpec.Kind? = nil, help: String
) -> ConfigKey {
    let spec = SettingSpec(
        name: name, kind: kind ?? T.settingKind, isOptional: T.isOptionalSetting,
        defaultValue: TrainingConfig()[keyPath: path].settingValue, range: range, help: help)
    return ConfigKey(
        spec: spec, section: section, get: { $0[keyPath: path].settingValue },
        set: { config, value in if let typed = T(settingValue: value) { config[keyPath: path] = typed } })
}
