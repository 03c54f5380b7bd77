import Distill
import Foundation
import Models
import Settings

extension TrainingConfig {
    /// "  --flag VALUE   help..." wrapped to 80 columns with the help in its own column (pre-wrapped,
    /// so the argument parser leaves the layout alone).
    public static func helpEntry(_ flag: String, _ text: String) -> String {
        let column = 30, width = 78
        var lines: [String] = []
        var line = "  " + flag
        if line.count >= column - 1 {
            lines.append(line)
            line = ""
        }
        line = line.padding(toLength: column, withPad: " ", startingAt: 0)
        var lineHasWords = false
        for word in text.split(separator: " ") {
            if lineHasWords && line.count + 1 + word.count > width {
                lines.append(line)
                line = String(repeating: " ", count: column)
                lineHasWords = false
            }
            line += (lineHasWords ? " " : "") + word
            lineHasWords = true
        }
        lines.append(line)
        return lines.joined(separator: "\n")
    }

    /// `--help` text for every key, grouped by section: flag, value type, default, range, help
    /// (and for method settings, the methods that read them).
    public static var helpText: String {
        var sections: [String] = []
        var lines: [String: [String]] = [:]
        for key in keys {
            if lines[key.section] == nil { sections.append(key.section) }
            let spec = key.spec
            var placeholder: String
            switch spec.kind {
            case .bool: placeholder = ""
            case .int: placeholder = " N"
            case .float, .double: placeholder = " X"
            case .string: placeholder = " TEXT"
            case .ints: placeholder = " I,J,..."
            case .numbers: placeholder = " LOW,HIGH"
            case let .choice(options): placeholder = options.count <= 6 ? " " + options.joined(separator: "|") : " NAME"
            }
            let readers =
                key.section == "method settings"
                ? MethodRegistry.settings.first(where: { $0.spec.name == spec.name })?.methods : nil
            let flag = spec.kind == .bool ? "\(spec.flag), --no-\(spec.flag.dropFirst(2))" : spec.flag + placeholder
            let text = spec.helpText(
                showingDefault: spec.name != "model" && spec.name != "out",
                extra: readers.map { ["used by " + $0.joined(separator: ", ")] } ?? [])
            lines[key.section, default: []].append(helpEntry(flag, text))
        }
        return sections.map { "\($0):\n" + lines[$0]!.joined(separator: "\n") }.joined(separator: "\n\n")
    }
}
