import Foundation
import Settings
import Yams

/// Every YAML file sfkd reads (configs, sweep files) goes through here, with one set of guards:
/// a size cap, no anchors or aliases (a config never needs them, and their expansion is how a
/// small file becomes a huge one), a mapping at the top level. `kind` names the file in errors
/// ("config file", "sweep file").
struct YAMLFile {
    /// Largest YAML file read: configs and sweeps are a few hundred bytes.
    static let maximumBytes = 1 << 20

    /// The text as read, for a second look (the order of a mapping's keys).
    let text: String
    /// The top-level mapping (empty for an empty file).
    let mapping: [String: Any]
    /// How errors name the file: "config file PATH".
    let source: String

    /// Reads and parses the file at `path`.
    init(path: String, kind: String) throws {
        let source = "\(kind) \(path)"
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
        guard size <= Self.maximumBytes else {
            throw UserError("\(source) is \(size) bytes; a \(kind) may be at most \(Self.maximumBytes) bytes")
        }
        guard let data = FileManager.default.contents(atPath: path), data.count <= Self.maximumBytes else {
            throw UserError("\(source) not found or unreadable")
        }
        try self.init(text: String(decoding: data, as: UTF8.self), source: source, kind: kind)
    }

    /// Parses `text`; `source` names it in errors.
    init(text: String, source: String, kind: String = "config file") throws {
        if let (line, token) = firstAnchorOrAlias(in: text) {
            let what = token.hasPrefix("&") ? "anchor" : "alias"
            throw UserError(
                "\(source): line \(line) uses the YAML \(what) '\(token)'; \(kind)s may not use anchors or aliases (write each value out)"
            )
        }
        let parsed: Any?
        do {
            parsed = try Yams.load(yaml: text)
        } catch {
            throw UserError("\(source): not valid YAML: \(error)")
        }
        guard parsed != nil else {
            self.text = text
            self.source = source
            mapping = [:]
            return
        }
        guard let mapping = parsed as? [String: Any] else {
            throw UserError("\(source): expected a mapping of keys to values at the top level")
        }
        self.text = text
        self.source = source
        self.mapping = mapping
    }

    /// The keys of the mapping under `key`, in the file's order (Yams's dictionaries lose it).
    func keyOrder(of key: String) -> [String] {
        ((try? Yams.compose(yaml: text))?.mapping?[key]?.mapping?.keys.compactMap(\.string)) ?? []
    }
}

/// The first YAML anchor (`&name`) or alias (`*name`) outside quotes and comments, with its line.
func firstAnchorOrAlias(in text: String) -> (line: Int, token: String)? {
    for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        var quote: Character?
        var previous: Character = " "
        var index = line.startIndex
        while index < line.endIndex {
            let c = line[index]
            if let open = quote {
                if c == open { quote = nil }
            } else if c == "'" || c == "\"" {
                quote = c
            } else if c == "#" && (previous == " " || previous == "\t" || index == line.startIndex) {
                break
            } else if (c == "&" || c == "*") && " \t,[{:-".contains(previous) {
                let rest = line[line.index(after: index)...].prefix { !" \t,[]{}".contains($0) }
                if !rest.isEmpty { return (number + 1, String(c) + rest) }
            }
            previous = c
            index = line.index(after: index)
        }
    }
    return nil
}
