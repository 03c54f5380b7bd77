import Settings
import Training

/// Flags that other commands share with `sfkd train`, read through its settings table: one
/// type, range and error message per key, whichever command takes the flag.
enum SettingFlags {
    /// A config with the given keys set from their flag text (nil: not given, the default stays).
    static func config(_ values: [(key: String, text: String?)], base: TrainingConfig = TrainingConfig()) throws
        -> TrainingConfig
    {
        var config = base
        for (key, text) in values {
            guard let text else { continue }
            try config.set(key, to: text, source: "flag --\(key.replacingOccurrences(of: "_", with: "-"))")
        }
        return config
    }
}
