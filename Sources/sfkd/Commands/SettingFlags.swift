import ArgumentParser
import Settings
import Training

/// Flags that other commands share with `sfkd train`, read through its settings table: one
/// type, range and error message per key, whichever command takes the flag.
enum SettingFlags {
    /// A config with the given keys set from their flag text (nil: not given, the default stays).
    static func config(_ values: [(key: String, text: String?)]) throws -> TrainingConfig {
        var config = TrainingConfig()
        for (key, text) in values {
            guard let text else { continue }
            try config.set(key, to: text, source: "flag --\(key.replacingOccurrences(of: "_", with: "-"))")
        }
        return config
    }
}

extension SettingFlags {
    /// The help of the settings table's `key` (its text and range), for a command that takes
    /// the same flag as `sfkd train`; `note` adds what the flag means in that command. The
    /// argument parser shows the command's own default; `tableDefault` names the table's, for a
    /// flag the command leaves to the table.
    static func help(_ key: String, _ note: String? = nil, tableDefault: Bool = false) -> ArgumentHelp {
        guard let spec = TrainingConfig.key(named: key)?.spec else {
            fatalError("SettingFlags.help: no setting '\(key)'")
        }
        return ArgumentHelp(spec.helpText(note: note, showingDefault: tableDefault))
    }
}
