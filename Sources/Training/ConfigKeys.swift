import Distill
import Foundation
import Models
import Settings
import Tensors
import Yams

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
private let modelArgumentsKey: ConfigKey = {
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
private func field<T: SettingConvertible>(
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

extension TrainingConfig {
    private static let trainingKeys: [ConfigKey] = [
        field("model", \.model, "model and data", help: "Model to train (sfkd info lists them)."),
        modelArgumentsKey,
        field(
            "dataset", \.dataset, "model and data",
            help: "Dataset: fashion-mnist, mnist, cifar10, cifar100, npy, synthetic."),
        field(
            "data_dir", \.dataDirectory, "model and data",
            help: "Folder with the dataset files (for folder: DIR/train/<class>/*, DIR/val/<class>/*)."),
        field(
            "val_dir", \.valDirectory, "model and data",
            help: "Dataset folder: the evaluation split's folder (default DATA_DIR/val)."),
        field(
            "input_size", \.inputSize, "model and data", range: .between(8, 4096),
            help:
                "Bring images to this side with timm's transforms (train: RandomResizedCrop, flip, colour jitter, random erasing; eval: resize, centre crop). Image folders default to 224; other datasets keep their own size when unset."
        ),
        field(
            "scale", \.scale, "model and data", range: SettingRange(minimum: 0, minimumIsExclusive: true, maximum: 1),
            help: "With input_size: RandomResizedCrop's range of area fractions."),
        field(
            "ratio", \.ratio, "model and data", range: SettingRange(minimum: 0, minimumIsExclusive: true, maximum: 100),
            help: "With input_size: RandomResizedCrop's range of aspect ratios (log-uniform)."),
        field(
            "train_interpolation", \.trainInterpolation, "model and data",
            help: "With input_size: the crop's resampling filter (random: bilinear or bicubic per sample, as timm)."),
        field(
            "color_jitter", \.colorJitter, "model and data", range: .between(0, 10),
            help: "With input_size: brightness, contrast and saturation jitter factor (0 turns it off)."),
        field(
            "aa", \.autoAugment, "model and data",
            help:
                "With input_size: timm's RandAugment string, e.g. rand-m9-mstd0.5-inc1 (m magnitude 0-10, n ops, p probability, mstd magnitude noise, inc1 increasing ops, t op set weights|3a|3aw); turns color_jitter off, as timm."
        ),
        field(
            "reprob", \.erasingProbability, "model and data", range: .between(0, 1),
            help: "With input_size: probability of random erasing (timm's remode=pixel)."),
        field(
            "crop_pct", \.cropPercent, "model and data",
            range: SettingRange(minimum: 0, minimumIsExclusive: true, maximum: 1),
            help: "With input_size: the evaluation centre crop's share of the resized shorter side (timm's crop_pct)."),
        field(
            "interpolation", \.interpolation, "model and data",
            help: "With input_size: the evaluation resize's resampling filter (PIL's, as timm uses it)."),
        field(
            "mixup", \.mixup, "model and data", range: .between(0, 100),
            help:
                "Mixup alpha (Beta(alpha, alpha) blend of each sample with the one half a batch away; 0 off). Soft targets reach every loss."
        ),
        field(
            "cutmix", \.cutmix, "model and data", range: .between(0, 100),
            help: "CutMix alpha (a box of the partner pasted in; 0 off)."),
        field(
            "mixup_prob", \.mixupProbability, "model and data", range: .between(0, 1),
            help: "Probability that a batch is mixed at all."),
        field(
            "mixup_switch_prob", \.mixupSwitchProbability, "model and data", range: .between(0, 1),
            help: "With both mixup and cutmix on: probability of CutMix for a batch."),
        field(
            "loader_threads", \.loaderThreads, "model and data", range: .between(1, 256),
            help: "Worker threads that decode and augment batches ahead of the step (each rank decodes only its shard)."
        ),
        field(
            "normalization", \.normalization, "model and data",
            help:
                "Per-channel normalisation: the dataset's statistics, or timm's ImageNet (0.485,0.456,0.406 / 0.229,0.224,0.225) or Inception (0.5 / 0.5) constants, as ImageNet-pretrained models expect."
        ),
        field(
            "val_split", \.valSplit, "model and data",
            range: SettingRange(minimum: 0, minimumIsExclusive: true, maximum: 100_000_000),
            help:
                "Hold out this many training images (or this fraction, below 1), stratified by class and fixed by the seed: the best checkpoint (best.safetensors) is chosen on them, never on test."
        ),
        field(
            "val_seed", \.valSeed, "model and data", range: .between(0, 9_007_199_254_740_992),
            help:
                "The seed that picks the val_split images (default: seed); fix it to keep one validation split across seeds, and out of the teacher's training."
        ),
        field(
            "teacher_eval", \.evaluateTeacher, "model and data",
            help:
                "With a teacher: score it on the validation and test splits before training (printed, and in summary.json)."
        ),
        field(
            "skip_bad_images", \.skipBadImages, "model and data",
            help: "Dataset folder: count and skip images that do not decode (default: stop with the file's name)."),
        field(
            "crop_padding", \.cropPadding, "model and data", range: .between(0, 64),
            help: "Random-crop padding in pixels (0 turns cropping off; default per dataset)."),
        field("flip", \.horizontalFlip, "model and data", help: "Random horizontal flips (default per dataset)."),
        field(
            "init", \.initialization, "model and data",
            help:
                "Start from the weights of this sfkd model file (sfkd train or sfkd import wrote it) instead of a random initialisation."
        ),
        field(
            "reset_head", \.resetHead, "model and data",
            help: "With --init: a new classifier (for another class count) instead of the file's."),
        field(
            "seed", \.seed, "model and data", range: .between(0, 9_007_199_254_740_992),
            help: "Seed for initialisation, data order and augmentation."),

        field("epochs", \.epochs, "schedule", range: .between(1, 1_000_000), help: "Epochs to train (default 1)."),
        field(
            "steps", \.steps, "schedule", range: .between(1, 1_000_000_000_000),
            help: "Optimizer steps to train, instead of epochs."),
        field(
            "batch_size", \.batchSize, "schedule", range: .between(1, 1_048_576),
            help: "Global batch size, split over the student ranks."),
        field(
            "eval_batch_size", \.evalBatchSize, "schedule", range: .between(1, 1_048_576),
            help: "Batch size for evaluation."),
        field("optimizer", \.optimizer, "schedule", help: "Optimizer."),
        field(
            "lr", \.learningRate, "schedule", range: SettingRange(minimum: 0, minimumIsExclusive: true, maximum: 100),
            help: "Peak learning rate (default 0.05 for SGD, 1e-3 for AdamW)."),
        field("momentum", \.momentum, "schedule", range: .between(0, 1, upperExclusive: true), help: "SGD momentum."),
        field("nesterov", \.nesterov, "schedule", help: "Nesterov momentum."),
        field(
            "weight_decay", \.weightDecay, "schedule", range: .between(0, 10),
            help: "Weight decay (default 5e-4 for SGD, 0.05 for AdamW); never on biases, norms, embeddings."),
        field("schedule", \.schedule, "schedule", help: "Learning-rate schedule after the warm-up."),
        field(
            "warmup_epochs", \.warmupEpochs, "schedule", range: .between(0, 1_000_000),
            help: "Linear warm-up length in epochs (may be fractional)."),
        field(
            "min_lr", \.minimumLearningRate, "schedule", range: .between(0, 100),
            help: "Learning rate at the end of the cosine schedule."),
        field(
            "step_size_epochs", \.stepSizeEpochs, "schedule",
            range: SettingRange(minimum: 0, minimumIsExclusive: true, maximum: 1_000_000),
            help: "Epochs between decays of the step schedule."),
        field(
            "step_gamma", \.stepGamma, "schedule",
            range: SettingRange(minimum: 0, minimumIsExclusive: true, maximum: 1),
            help: "Decay factor of the step schedule."),
        field(
            "label_smoothing", \.labelSmoothing, "schedule", range: .between(0, 1, upperExclusive: true),
            help: "Cross-entropy label smoothing."),
        field(
            "clip_grad_norm", \.clipGradientNorm, "schedule",
            range: SettingRange(minimum: 0, minimumIsExclusive: true, maximum: 1e6),
            help: "Clip gradients to this global L2 norm."),

        field("out", \.output, "run folder", help: "Run folder (default runs/MODEL-DATASET)."),
        field(
            "log_every", \.logEverySteps, "run folder", range: .between(1, 1_000_000_000),
            help: "Steps between metrics.jsonl lines."),
        field(
            "checkpoint_every", \.checkpointEverySteps, "run folder", range: .between(1, 1_000_000_000),
            help: "Steps between checkpoints (besides each epoch's end)."),
        field(
            "keep_checkpoints", \.keepCheckpoints, "run folder", range: .between(1, 1_000_000),
            help: "Complete checkpoints to keep (the disk must hold one more while the next is written)."),
        field(
            "threads", \.threads, "run folder", range: .between(1, 1024), help: "Threads for OpenBLAS and the kernels."),

        field(
            "teacher", \.teacher, "distillation",
            help: "Frozen teacher: a model.safetensors written by sfkd train on the same dataset."),
        field(
            "method", \.method, "distillation", kind: .choice(MethodRegistry.names),
            help: "Distillation method: "
                + MethodRegistry.methods.map { "\($0.name) (\($0.summary))" }.joined(separator: "; ") + "."),

        field(
            "teacher_ranks", \.teacherRanks, "data parallel", range: .between(0, 65_536),
            help: "Ranks that run the frozen teacher and stream its outputs to the students (0: inline)."),
        field(
            "bucket_mb", \.bucketMegabytes, "data parallel",
            range: SettingRange(minimum: 0, minimumIsExclusive: true, maximum: 1024),
            help: "Gradient allreduce bucket size in MiB after the first 1 MiB bucket."),
        field(
            "overlap", \.overlap, "data parallel",
            help: "Allreduce gradient buckets while backward runs (--no-overlap: after it)."),
        field(
            "grad_sync", \.gradientSync, "data parallel",
            help:
                "Gradient averaging: allreduce (float32), bf16 (buckets rounded to bfloat16 on the wire and summed in float32 per combine, as DDP's bf16_compress_hook: half the bytes) or zero1 (ZeRO stage 1: reduce-scatter, each rank updates its shard with 1/R of the optimizer state, all-gather of the parameters; checkpoints hold the full state)."
        ),
        field(
            "sync_bn", \.syncBatchNorm, "data parallel",
            help: "BatchNorm statistics over the global batch (all student ranks)."),
        field(
            "comm_timeout", \.communicationTimeout, "data parallel",
            range: SettingRange(minimum: 0, minimumIsExclusive: true, maximum: 86_400),
            help: "Seconds an MPI operation may wait before the job aborts with a report."),
    ]

    /// Every key: the training keys, then every method's settings (declared by the methods). A
    /// method setting may not take a training key's name: the registry refuses it.
    public static let keys: [ConfigKey] = {
        let settings: [(spec: SettingSpec, methods: [String])]
        do {
            settings = try MethodRegistry.settingsTable(
                MethodRegistry.methods, reserved: Set(trainingKeys.map(\.spec.name)))
        } catch {
            fatalError("\(error)")
        }
        return trainingKeys
            + settings.map { spec, _ in
                ConfigKey(
                    spec: spec, section: "method settings", get: { $0.distillation.value(of: spec) },
                    set: { $0.distillation.set(spec, to: $1) })
            }
    }()

    /// The names of the methods' settings.
    static let methodSettingNames = Set(MethodRegistry.settings.map(\.spec.name))

    static var keyNames: [String] { keys.map(\.spec.name) }

    public static func key(named name: String) -> ConfigKey? { keys.first { $0.spec.name == name } }

    /// Sets `key` from a YAML value or a flag's text; errors name the key, the expected type and range.
    public mutating func set(_ key: String, to value: Any, source: String) throws {
        guard let entry = Self.key(named: key) else {
            throw UserError("\(source): unknown key '\(key)'; valid keys: \(Self.keyNames.joined(separator: ", "))")
        }
        let parsed: SettingValue
        do {
            parsed = try entry.parse?(value) ?? entry.spec.parse(value)
        } catch let error as SettingTypeError {
            throw UserError("\(source): key '\(key)' expects \(error.expected), found '\(value)'")
        }
        try entry.spec.check(parsed, source: source)
        entry.set(&self, parsed)
    }

    /// The current value of `key`, as the saved config writes it.
    public func value(of key: String) -> SettingValue? { Self.key(named: key)?.get(self) }

    /// Largest config file read: configs are a few hundred bytes.
    static let maximumConfigBytes = 1 << 20

    /// Applies a YAML mapping (the contents of `--config FILE`). Anchors and aliases are refused:
    /// a config never needs them, and their expansion is how a small file becomes a huge one.
    public mutating func apply(yaml text: String, source: String) throws {
        if let (line, token) = firstAnchorOrAlias(in: text) {
            throw UserError(
                "\(source): line \(line) uses the YAML \(token.hasPrefix("&") ? "anchor" : "alias") '\(token)'; config files may not use anchors or aliases (write each value out)"
            )
        }
        let parsed: Any?
        do {
            parsed = try Yams.load(yaml: text)
        } catch {
            throw UserError("\(source): not valid YAML: \(error)")
        }
        guard let parsed else { return }
        guard let mapping = parsed as? [String: Any] else {
            throw UserError("\(source): expected a mapping of keys to values at the top level")
        }
        for key in mapping.keys.sorted() {
            try set(key, to: mapping[key]!, source: source)
        }
    }

    public mutating func apply(yamlFile path: String) throws {
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
        guard size <= Self.maximumConfigBytes else {
            throw UserError(
                "config file \(path) is \(size) bytes; a config file may be at most \(Self.maximumConfigBytes) bytes")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UserError("config file \(path) not found or unreadable")
        }
        try apply(yaml: String(decoding: data, as: UTF8.self), source: "config file \(path)")
    }

    /// The resolved config as YAML, every key listed (unset optional ones as null).
    public func yaml() throws -> String {
        var mapping: [String: Any] = [:]
        for key in Self.keys {
            switch key.get(self) {
            case let .double(v): mapping[key.spec.name] = ExactDouble(value: v)
            case let .numbers(v): mapping[key.spec.name] = v.map(ExactDouble.init)
            case let value: mapping[key.spec.name] = value.plain
            }
        }
        return try Yams.dump(object: mapping, sortKeys: true)
    }

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
            var facts: [String] = []
            if spec.defaultValue != .null, spec.name != "model", spec.name != "out" {
                facts.append("default \(spec.defaultValue.text)")
            }
            if let range = spec.range { facts.append(range.phrase) }
            if key.section == "method settings",
                let methods = MethodRegistry.settings.first(where: { $0.spec.name == spec.name })?.methods
            {
                facts.append("used by " + methods.joined(separator: ", "))
            }
            let flag = spec.kind == .bool ? "\(spec.flag), --no-\(spec.flag.dropFirst(2))" : spec.flag + placeholder
            let text = spec.help + (facts.isEmpty ? "" : " (" + facts.joined(separator: "; ") + ")")
            lines[key.section, default: []].append(helpEntry(flag, text))
        }
        return sections.map { "\($0):\n" + lines[$0]!.joined(separator: "\n") }.joined(separator: "\n\n")
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

/// A number written with the shortest digits that read back to the same Double (Yams writes
/// 15 significant digits, so 4/3 would come back changed and a resume would see a new value).
private struct ExactDouble: NodeRepresentable {
    let value: Double
    func represented() throws -> Node { Node(String(value), Tag(.float)) }
}
