import Foundation
import Settings
import Tensors

/// A sweep file: every combination of the `grid` settings, each over the `seeds`, on top of
/// `base` settings, after the `prepare` runs they may refer to (a teacher trained once):
///
///     base: {dataset: fashion-mnist, epochs: 8, val_split: 5000, teacher: "{prepare.teacher}"}
///     prepare:
///       teacher: {model: resnet20, epochs: 8}
///     grid:
///       model: [vit-tiny, mixer-tiny]
///       method: [none, kd, dkd, fitnet, ofa, sfkd]
///     seeds: [0, 1, 2]
///
/// `"{prepare.NAME}"` in a value is the model file that prepare run writes; `config: FILE` in
/// `base` or a prepare run reads a recipe first (relative to the sweep file). `variants:` (a
/// mapping of names to settings) adds an axis of hand-made settings, as an ablation needs.
/// Every key is a `sfkd train` key, checked when the plan is read, so a typo fails before
/// anything trains.
public struct SweepPlan {
    public struct Run {
        /// A folder name from the settings, e.g. `model-vit-tiny_method-kd_seed-0`.
        public let name: String
        /// The grid's values for this run, in the grid's key order, as written in the file.
        public let settings: [(key: String, value: String)]
        public let seed: Int?
        public var config: TrainingConfig
    }

    public let name: String
    /// The grid's keys in the file's order.
    public let axes: [String]
    public let seeds: [Int]
    public var prepare: [Run] = []
    public var runs: [Run] = []

    static let topLevelKeys: Set<String> = ["name", "base", "config", "prepare", "grid", "variants", "seeds"]

    /// Reads `path`; `overrides` (`--set key=value`) replace base settings, or a prepare run's
    /// as `prepare.NAME.key`; `seeds` replaces the file's; runs go under `output`.
    /// Runs a sweep may plan unless told otherwise (`--max-runs`): far more than a person can
    /// afford to train, far less than what would exhaust memory while planning.
    public static let defaultMaximumRuns = 10_000

    public init(
        file path: String, overrides: [(String, String)] = [], seeds seedOverride: [Int]? = nil, output: String,
        maximumRuns: Int = defaultMaximumRuns
    ) throws {
        let file = try YAMLFile(path: path, kind: "sweep file")
        let source = file.source, mapping = file.mapping
        let gridOrder = file.keyOrder(of: "grid"), variantOrder = file.keyOrder(of: "variants")
        let unknown = Set(mapping.keys).subtracting(Self.topLevelKeys).sorted()
        guard unknown.isEmpty else {
            throw UserError(
                "\(source): unknown top-level key(s) \(unknown.joined(separator: ", ")); a sweep file has \(Self.topLevelKeys.sorted().joined(separator: ", "))"
            )
        }
        name = (mapping["name"] as? String) ?? ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        let directory = (path as NSString).deletingLastPathComponent

        func settings(_ value: Any?, _ what: String) throws -> [String: Any] {
            guard let value else { return [:] }
            guard let settings = value as? [String: Any] else {
                throw UserError("\(source): '\(what)' must be a mapping of sfkd train keys to values")
            }
            return settings
        }
        // The prepare runs: standalone configs, trained first, in name order.
        let prepareSettings = try settings(mapping["prepare"], "prepare")
        var preparedFiles: [String: String] = [:]
        for runName in prepareSettings.keys.sorted() {
            let folder = ((output as NSString).appendingPathComponent("prepare") as NSString).appendingPathComponent(
                runName)
            preparedFiles[runName] = (folder as NSString).appendingPathComponent("model.safetensors")
        }
        func resolved(_ value: Any, _ what: String) throws -> Any {
            guard let text = value as? String, text.contains("{prepare.") else { return value }
            var result = text
            for (runName, file) in preparedFiles {
                result = result.replacingOccurrences(of: "{prepare.\(runName)}", with: file)
            }
            guard !result.contains("{prepare.") else {
                throw UserError(
                    "\(source): \(what) refers to '\(text)', but 'prepare' has only \(preparedFiles.keys.sorted().joined(separator: ", "))"
                )
            }
            return result
        }
        func apply(_ values: [String: Any], to config: inout TrainingConfig, _ what: String) throws {
            if let file = values["config"] {
                guard let file = file as? String else {
                    throw UserError("\(source): \(what) 'config' names a recipe file")
                }
                try config.apply(
                    yamlFile: file.hasPrefix("/") ? file : (directory as NSString).appendingPathComponent(file))
            }
            for key in values.keys.sorted() where key != "config" {
                try config.set(key, to: try resolved(values[key]!, "\(what) '\(key)'"), source: "\(source), \(what)")
            }
        }
        for runName in prepareSettings.keys.sorted() {
            var config = TrainingConfig()
            try apply(try settings(prepareSettings[runName], "prepare.\(runName)"), to: &config, "prepare.\(runName)")
            for (key, value) in overrides where key.hasPrefix("prepare.\(runName).") {
                let name = String(key.dropFirst("prepare.\(runName).".count))
                try config.set(name, to: value, source: "--set \(key)=\(value)")
            }
            config.output = ((preparedFiles[runName]!) as NSString).deletingLastPathComponent
            try config.validate()
            prepare.append(Run(name: runName, settings: [], seed: nil, config: config))
        }

        var base = TrainingConfig()
        if let file = mapping["config"] as? String {
            try base.apply(yamlFile: file.hasPrefix("/") ? file : (directory as NSString).appendingPathComponent(file))
        }
        try apply(try settings(mapping["base"], "base"), to: &base, "base")
        for (key, value) in overrides where !key.hasPrefix("prepare.") {
            try base.set(key, to: try resolved(value, "--set \(key)"), source: "--set \(key)=\(value)")
        }
        for (key, _) in overrides where key.hasPrefix("prepare.") {
            guard prepareSettings.keys.contains(where: { key.hasPrefix("prepare.\($0).") }) else {
                throw UserError(
                    "--set \(key): 'prepare' has only \(prepareSettings.keys.sorted().joined(separator: ", ")) (write prepare.NAME.KEY=VALUE)"
                )
            }
        }

        let grid = try settings(mapping["grid"], "grid")
        let variants = try settings(mapping["variants"], "variants")
        axes = (variants.isEmpty ? [] : ["variant"]) + (gridOrder.isEmpty ? grid.keys.sorted() : gridOrder)
        var values: [[Any]] = variants.isEmpty ? [] : [variantOrder.isEmpty ? variants.keys.sorted() : variantOrder]
        for key in axes where key != "variant" {
            guard TrainingConfig.key(named: key) != nil else {
                throw UserError("\(source): grid key '\(key)' is not a sfkd train key")
            }
            guard key != "seed" else { throw UserError("\(source): give seeds as 'seeds: [0, 1, 2]', not in the grid") }
            guard let list = grid[key] as? [Any], !list.isEmpty else {
                throw UserError("\(source): grid key '\(key)' needs a non-empty list of values")
            }
            values.append(list)
        }
        if let seedOverride {
            guard !seedOverride.isEmpty, Set(seedOverride).count == seedOverride.count,
                seedOverride.allSatisfy({ $0 >= 0 })
            else {
                throw UserError("--seeds must be distinct whole numbers >= 0")
            }
            seeds = seedOverride
        } else if let list = mapping["seeds"] {
            guard let seeds = list as? [Int], !seeds.isEmpty, Set(seeds).count == seeds.count,
                seeds.allSatisfy({ $0 >= 0 })
            else {
                throw UserError("\(source): 'seeds' must be a list of distinct whole numbers >= 0")
            }
            self.seeds = seeds
        } else {
            seeds = [base.seed]
        }
        // Counted before anything is planned: a grid of a million runs is refused, not built.
        var count = seeds.count
        for list in values {
            let (product, overflow) = count.multipliedReportingOverflow(by: list.count)
            count = overflow ? Int.max : product
        }
        guard count <= maximumRuns else {
            let sizes = zip(axes, values).map { "\($0.0) \($0.1.count)" } + ["seeds \(seeds.count)"]
            throw UserError(
                "\(source): the grid makes \(count == Int.max ? "more than \(Int.max)" : "\(count)") runs (\(sizes.joined(separator: " x "))), "
                    + "more than the \(maximumRuns) a sweep may plan; shrink the grid or raise the cap with --max-runs N"
            )
        }
        var combinations: [[Any]] = [[]]
        for list in values { combinations = combinations.flatMap { prefix in list.map { prefix + [$0] } } }
        var names: Set<String> = []
        for combination in combinations {
            for seed in seeds {
                var config = base
                var described: [(key: String, value: String)] = []
                for (key, value) in zip(axes, combination) {
                    if key == "variant", let variant = value as? String {
                        try apply(
                            try settings(variants[variant], "variants.\(variant)"), to: &config, "variants.\(variant)")
                    } else {
                        try config.set(
                            key, to: try resolved(value, "grid '\(key)'"), source: "\(source), grid '\(key)'")
                    }
                    described.append((key, Self.text(value)))
                }
                config.seed = seed
                let runName = Self.folderName(described + [("seed", "\(seed)")])
                guard names.insert(runName).inserted else {
                    throw UserError(
                        "\(source): two grid combinations give the run name '\(runName)'; make the values distinct")
                }
                config.output = ((output as NSString).appendingPathComponent("runs") as NSString)
                    .appendingPathComponent(runName)
                do {
                    try config.validate()
                } catch let error as UserError {
                    throw UserError("\(source), run \(runName): \(error.description)")
                }
                runs.append(Run(name: runName, settings: described, seed: seed, config: config))
            }
        }
    }

    static func text(_ value: Any) -> String {
        if let list = value as? [Any] { return list.map(text).joined(separator: ",") }
        return "\(value)"
    }

    /// `key-value_key-value`, with characters a folder name should not hold replaced.
    static func folderName(_ settings: [(key: String, value: String)]) -> String {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: ".,+="))
        func clean(_ text: String) -> String {
            String(text.unicodeScalars.map { allowed.contains($0) ? Character($0) : "-" })
        }
        return settings.map { "\(clean($0.key))-\(clean($0.value))" }.joined(separator: "_")
    }
}
