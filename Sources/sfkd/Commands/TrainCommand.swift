import ArgumentParser
import Foundation
import Settings
import Tensors
import Training

/// `sfkd train`: every setting of `TrainingConfig.keys` is a flag (`--batch-size 64` for the
/// key `batch_size`; booleans as `--sync-bn` / `--no-overlap` or with a value), so the flags,
/// the YAML keys and this help come from one table.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model on a dataset (flags override --config; the resolved config is saved in --out).",
        usage: "sfkd train --model NAME [--dataset NAME] [--config FILE.yaml] [--resume] [--KEY VALUE ...]",
        discussion: """
            Writes to --out: config.yaml, metrics.jsonl, checkpoints/step-N/ (DONE written last), \
            model.safetensors and summary.json. --resume continues from the newest complete checkpoint \
            (the folder's config.yaml is the base). Every key below is also a YAML key of --config (snake_case).

            \(TrainingConfig.helpEntry("--config FILE.yaml", "YAML file with any of the keys below; flags override it."))
            \(TrainingConfig.helpEntry("--resume", "Continue from the newest complete checkpoint in --out; settings that change the trajectory must match the saved run's."))
            \(TrainingConfig.helpEntry("--allow-change KEY,...", "With --resume: keys that may differ from the saved run (a longer --epochs, say); the message says what that changes."))
            \(TrainingConfig.helpEntry("--overwrite", "Replace the run a non-empty --out holds (without it, such a folder is refused)."))

            \(TrainingConfig.helpText)
            """
    )

    @Argument(parsing: .captureForPassthrough, help: .hidden) var arguments: [String] = []

    /// What the command line says: the config file, whether to resume, and settings in order.
    struct Invocation {
        var configFile: String?
        var options = RunOptions()
        var settings: [(key: String, value: String, flag: String)] = []

        func sets(_ key: String) -> Bool { settings.contains { $0.key == key } }
    }

    /// Reads `--config`, `--resume` and `--KEY VALUE`, `--KEY=VALUE`, `--FLAG`, `--no-FLAG`.
    static func parse(_ arguments: [String]) throws -> Invocation {
        var invocation = Invocation()
        var index = 0
        func value(for flag: String) throws -> String {
            index += 1
            guard index < arguments.count else { throw UserError("\(flag) needs a value") }
            return arguments[index]
        }
        while index < arguments.count {
            let argument = arguments[index]
            guard argument.hasPrefix("--"), argument.count > 2 else {
                if argument == "-h" { throw CleanExit.helpRequest(TrainCommand.self) }
                throw UserError(
                    "unexpected argument '\(argument)'; settings are flags such as --model resnet8 (sfkd train --help lists them)"
                )
            }
            var name = String(argument.dropFirst(2))
            var inline: String?
            if let equals = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            switch name {
            case "help": throw CleanExit.helpRequest(TrainCommand.self)
            case "config": invocation.configFile = try inline ?? value(for: argument)
            case "resume": invocation.options.resume = true
            case "overwrite": invocation.options.overwrite = true
            case "allow-change":
                let keys = try (inline ?? value(for: argument)).split(separator: ",").map {
                    $0.trimmingCharacters(in: .whitespaces)
                }
                for key in keys where TrainingConfig.key(named: key) == nil {
                    throw UserError(
                        "--allow-change: unknown key '\(key)'; valid keys: \(TrainingConfig.keys.map(\.spec.name).joined(separator: ", "))"
                    )
                }
                invocation.options.allowedChanges.formUnion(keys)
            default:
                let key = name.replacingOccurrences(of: "-", with: "_")
                if let spec = TrainingConfig.key(named: key)?.spec {
                    if spec.kind == .bool && inline == nil {
                        // A bare boolean flag means true; a following word that is not a flag is its value.
                        let next = index + 1 < arguments.count ? arguments[index + 1] : nil
                        let text = next.map { !$0.hasPrefix("--") } == true ? try value(for: argument) : "true"
                        invocation.settings.append((key, text, argument))
                    } else {
                        invocation.settings.append((key, try inline ?? value(for: argument), "--" + name))
                    }
                } else if key.hasPrefix("no_"), let spec = TrainingConfig.key(named: String(key.dropFirst(3)))?.spec,
                    spec.kind == .bool, inline == nil
                {
                    invocation.settings.append((spec.name, "false", argument))
                } else {
                    let close = TrainingConfig.keys.map(\.spec.flag).filter {
                        editDistance(String($0.dropFirst(2)), name) <= 2
                    }
                    throw UserError(
                        "unknown option '--\(name)'\(close.isEmpty ? "" : "; did you mean \(close.prefix(3).joined(separator: ", "))?") (sfkd train --help lists them)"
                    )
                }
            }
            index += 1
        }
        return invocation
    }

    func run() throws {
        let invocation = try Self.parse(arguments)
        // The config file may name the run folder; a resumed run starts from that folder's config.yaml.
        var fromFile = TrainingConfig()
        if let file = invocation.configFile { try fromFile.apply(yamlFile: file) }
        let flagFolder = invocation.settings.last { $0.key == "out" }?.value
        let fileSetsOutput = invocation.configFile != nil && fromFile.output != TrainingConfig().output
        let folder = flagFolder ?? (fileSetsOutput ? fromFile.output : nil)
        var resolved = TrainingConfig()
        if invocation.options.resume, let folder {
            let saved = (folder as NSString).appendingPathComponent("config.yaml")
            if FileManager.default.fileExists(atPath: saved) { try resolved.apply(yamlFile: saved) }
        }
        if let file = invocation.configFile { try resolved.apply(yamlFile: file) }
        for (key, value, flag) in invocation.settings {
            try resolved.set(key, to: value, source: "flag \(flag)")
        }
        // A flag for one length replaces the other from the files (both as flags is an error).
        if invocation.sets("epochs") && !invocation.sets("steps") { resolved.steps = nil }
        if invocation.sets("steps") && !invocation.sets("epochs") { resolved.epochs = nil }
        if folder == nil { resolved.output = "runs/\(resolved.model)-\(resolved.dataset)" }
        let trainer = try Trainer(config: resolved)
        if !invocation.options.allowedChanges.isEmpty && !invocation.options.resume {
            throw UserError("--allow-change applies only with --resume")
        }
        try trainer.run(invocation.options)
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var current = [i] + [Int](repeating: 0, count: b.count)
        for j in stride(from: 1, through: b.count, by: 1) {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return a.isEmpty ? b.count : previous[b.count]
}
