import Distill
import Foundation
import Tensors
import Yams

/// Everything a training run needs. It comes from defaults, then a YAML file, then command-line
/// flags, all through the same key table, so a wrong key or type gets the same clear error
/// wherever it was written. The resolved config is saved as `config.yaml` in the run folder.
public struct TrainingConfig: Equatable, Sendable {
    public var model = ""
    public var dataset = "fashion-mnist"
    public var dataDirectory: String?
    public var epochs: Int?
    public var steps: Int?
    public var batchSize = 128
    public var evalBatchSize = 500
    public var optimizer = "sgd"
    public var learningRate: Double?
    public var momentum = 0.9
    public var nesterov = false
    public var weightDecay: Double?
    public var schedule = "cosine"
    public var warmupEpochs = 0.0
    public var minimumLearningRate = 0.0
    public var stepSizeEpochs = 30.0
    public var stepGamma = 0.1
    public var labelSmoothing = 0.1
    public var clipGradientNorm: Double?
    public var cropPadding: Int?
    public var horizontalFlip: Bool?
    public var seed = 0
    public var output = "runs/run"
    public var logEverySteps = 50
    public var checkpointEverySteps: Int?
    public var keepCheckpoints = 3
    public var threads: Int?
    /// `model.safetensors` of the frozen teacher (`--teacher`).
    public var teacher: String?
    public var distillation = DistillationSettings()
    /// Ranks that run the frozen teacher for the others (`--teacher-ranks`); 0 runs it inline.
    public var teacherRanks = 0
    /// Gradient bucket size in MiB after the first ~1 MiB bucket (`--bucket-mb`).
    public var bucketMegabytes = 8.0
    /// Allreduce gradient buckets while backward runs (`--no-overlap` turns it off).
    public var overlap = true
    /// BatchNorm with statistics over the global batch (`--sync-bn`).
    public var syncBatchNorm = false
    /// Seconds an MPI operation may wait before the job is aborted with a report (`--comm-timeout`).
    public var communicationTimeout = 300.0

    public init() {}

    /// The learning rate used when none is given: what works for each optimizer at batch 128.
    public var resolvedLearningRate: Double { learningRate ?? (optimizer == "adamw" ? 1e-3 : 0.05) }
    public var resolvedWeightDecay: Double { weightDecay ?? (optimizer == "adamw" ? 0.05 : 5e-4) }

    /// Checks that values make sense together; errors name the key.
    public func validate() throws {
        guard !model.isEmpty else { throw UserError("config: 'model' is required (--model NAME)") }
        if epochs != nil && steps != nil { throw UserError("config: give 'epochs' or 'steps', not both") }
        if let epochs, epochs < 1 { throw UserError("config: 'epochs' must be at least 1, found \(epochs)") }
        if let steps, steps < 1 { throw UserError("config: 'steps' must be at least 1, found \(steps)") }
        guard batchSize >= 1 else { throw UserError("config: 'batch_size' must be at least 1, found \(batchSize)") }
        guard evalBatchSize >= 1 else { throw UserError("config: 'eval_batch_size' must be at least 1, found \(evalBatchSize)") }
        guard ["sgd", "adamw"].contains(optimizer) else { throw UserError("config: 'optimizer' must be sgd or adamw, found '\(optimizer)'") }
        guard ["cosine", "step", "constant"].contains(schedule) else { throw UserError("config: 'schedule' must be cosine, step or constant, found '\(schedule)'") }
        guard resolvedLearningRate > 0 else { throw UserError("config: 'lr' must be positive, found \(resolvedLearningRate)") }
        guard (0..<1).contains(labelSmoothing) else { throw UserError("config: 'label_smoothing' must be in [0, 1), found \(labelSmoothing)") }
        if let clipGradientNorm, clipGradientNorm <= 0 { throw UserError("config: 'clip_grad_norm' must be positive, found \(clipGradientNorm)") }
        if let cropPadding, cropPadding < 0 { throw UserError("config: 'crop_padding' must be at least 0, found \(cropPadding)") }
        guard logEverySteps >= 1 else { throw UserError("config: 'log_every' must be at least 1, found \(logEverySteps)") }
        if let checkpointEverySteps, checkpointEverySteps < 1 { throw UserError("config: 'checkpoint_every' must be at least 1, found \(checkpointEverySteps)") }
        guard keepCheckpoints >= 1 else { throw UserError("config: 'keep_checkpoints' must be at least 1, found \(keepCheckpoints)") }
        if let threads, threads < 1 { throw UserError("config: 'threads' must be at least 1, found \(threads)") }
        let d = distillation
        if d.method.needsTeacher && teacher == nil {
            throw UserError("config: method '\(d.method.rawValue)' needs a teacher: pass --teacher FILE (a model.safetensors written by sfkd train)")
        }
        guard d.temperature > 0 else { throw UserError("config: 'tau' must be positive, found \(d.temperature)") }
        guard d.dwtLevels >= 1 else { throw UserError("config: 'dwt_levels' must be at least 1, found \(d.dwtLevels)") }
        guard d.gfflRho > 0 else { throw UserError("config: 'gffl_rho' must be positive, found \(d.gfflRho)") }
        guard d.gfflAlpha >= 0 else { throw UserError("config: 'gffl_alpha' must be at least 0, found \(d.gfflAlpha)") }
        guard d.ofaEpsilon > 0 else { throw UserError("config: 'ofa_eps' must be positive, found \(d.ofaEpsilon)") }
        guard seed >= 0 else { throw UserError("config: 'seed' must be at least 0, found \(seed)") }
        guard teacherRanks >= 0 else { throw UserError("config: 'teacher_ranks' must be at least 0, found \(teacherRanks)") }
        if teacherRanks > 0 && !d.method.needsTeacher {
            throw UserError("config: 'teacher_ranks' \(teacherRanks) needs a distillation method with a teacher; method is '\(d.method.rawValue)'")
        }
        guard bucketMegabytes > 0 else { throw UserError("config: 'bucket_mb' must be positive, found \(bucketMegabytes)") }
        guard communicationTimeout > 0 else { throw UserError("config: 'comm_timeout' must be positive, found \(communicationTimeout)") }
    }
}

/// One configuration key: its YAML name, how to set it from a YAML or flag value, how to render it.
struct ConfigKey {
    let name: String
    let apply: (inout TrainingConfig, Any) throws -> Void
    let render: (TrainingConfig) -> Any?
}

extension TrainingConfig {
    static let keys: [ConfigKey] = [
        string("model", \.model), string("dataset", \.dataset), optionalString("data_dir", \.dataDirectory),
        optionalInt("epochs", \.epochs), optionalInt("steps", \.steps), int("batch_size", \.batchSize), int("eval_batch_size", \.evalBatchSize),
        string("optimizer", \.optimizer), optionalDouble("lr", \.learningRate), double("momentum", \.momentum), bool("nesterov", \.nesterov),
        optionalDouble("weight_decay", \.weightDecay), string("schedule", \.schedule), double("warmup_epochs", \.warmupEpochs),
        double("min_lr", \.minimumLearningRate), double("step_size_epochs", \.stepSizeEpochs), double("step_gamma", \.stepGamma),
        double("label_smoothing", \.labelSmoothing), optionalDouble("clip_grad_norm", \.clipGradientNorm),
        optionalInt("crop_padding", \.cropPadding), optionalBool("flip", \.horizontalFlip), int("seed", \.seed), string("out", \.output),
        int("log_every", \.logEverySteps), optionalInt("checkpoint_every", \.checkpointEverySteps), int("keep_checkpoints", \.keepCheckpoints),
        optionalInt("threads", \.threads),
        optionalString("teacher", \.teacher),
        choice("method", \.distillation.method), intList("kd_stages", \.distillation.stages),
        float("lambda_ce", \.distillation.lambdaCE), float("lambda_kd", \.distillation.lambdaKD), float("tau", \.distillation.temperature),
        float("dkd_alpha", \.distillation.dkdAlpha), float("dkd_beta", \.distillation.dkdBeta),
        float("ofa_eps", \.distillation.ofaEpsilon), float("ofa_tau", \.distillation.ofaTemperature),
        choice("feat_norm", \.distillation.featureNormalization), int("dwt_levels", \.distillation.dwtLevels),
        optionalInt("ds2s_dim", \.distillation.ds2sWidth),
        float("lambda_low", \.distillation.lambdaLow), float("lambda_high", \.distillation.lambdaHigh),
        float("lambda_wav", \.distillation.lambdaWavelet), float("lambda_freq", \.distillation.lambdaFrequency),
        float("gffl_rho", \.distillation.gfflRho), float("gffl_alpha", \.distillation.gfflAlpha),
        choice("logit_loss", \.distillation.logitLoss), float("lambda_fitnet", \.distillation.lambdaFitNet),
        int("teacher_ranks", \.teacherRanks), double("bucket_mb", \.bucketMegabytes), bool("overlap", \.overlap),
        bool("sync_bn", \.syncBatchNorm), double("comm_timeout", \.communicationTimeout),
    ]

    static var keyNames: [String] { keys.map(\.name) }

    /// Sets `key` from a YAML value or a flag's text; errors name the key and the expected type.
    public mutating func set(_ key: String, to value: Any, source: String) throws {
        guard let entry = Self.keys.first(where: { $0.name == key }) else {
            throw UserError("\(source): unknown key '\(key)'; valid keys: \(Self.keyNames.joined(separator: ", "))")
        }
        do {
            try entry.apply(&self, value)
        } catch let error as ConfigTypeError {
            throw UserError("\(source): key '\(key)' expects \(error.expected), found '\(value)'")
        }
    }

    /// Applies a YAML mapping (the contents of `--config FILE`).
    public mutating func apply(yaml text: String, source: String) throws {
        let parsed: Any?
        do {
            parsed = try Yams.load(yaml: text)
        } catch {
            throw UserError("\(source): not valid YAML: \(error)")
        }
        guard let parsed else { return }
        guard let mapping = parsed as? [String: Any] else { throw UserError("\(source): expected a mapping of keys to values at the top level") }
        for key in mapping.keys.sorted() {
            try set(key, to: mapping[key]!, source: source)
        }
    }

    public mutating func apply(yamlFile path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw UserError("config file \(path) not found or unreadable") }
        try apply(yaml: String(decoding: data, as: UTF8.self), source: "config file \(path)")
    }

    /// The resolved config as YAML, every key listed (unset optional ones as null).
    public func yaml() throws -> String {
        var mapping: [String: Any] = [:]
        for key in Self.keys { mapping[key.name] = key.render(self) ?? NSNull() }
        return try Yams.dump(object: mapping, sortKeys: true)
    }
}

struct ConfigTypeError: Error { let expected: String }

private func asInt(_ value: Any) throws -> Int {
    if let v = value as? Int { return v }
    if let v = value as? String, let i = Int(v.trimmingCharacters(in: .whitespaces)) { return i }
    if let v = value as? Double, v == v.rounded(), Swift.abs(v) < 1e15 { return Int(v) }
    throw ConfigTypeError(expected: "an integer")
}

private func asDouble(_ value: Any) throws -> Double {
    if let v = value as? Double { return v }
    if let v = value as? Int { return Double(v) }
    if let v = value as? String, let d = Double(v.trimmingCharacters(in: .whitespaces)) { return d }
    throw ConfigTypeError(expected: "a number")
}

private func asBool(_ value: Any) throws -> Bool {
    if let v = value as? Bool { return v }
    if let v = value as? String {
        switch v.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: break
        }
    }
    throw ConfigTypeError(expected: "true or false")
}

private func asString(_ value: Any) throws -> String {
    if let v = value as? String { return v }
    throw ConfigTypeError(expected: "a string")
}

private func isNull(_ value: Any) -> Bool { value is NSNull }

private func int(_ name: String, _ path: WritableKeyPath<TrainingConfig, Int>) -> ConfigKey {
    ConfigKey(name: name, apply: { $0[keyPath: path] = try asInt($1) }, render: { $0[keyPath: path] })
}
private func optionalInt(_ name: String, _ path: WritableKeyPath<TrainingConfig, Int?>) -> ConfigKey {
    ConfigKey(name: name, apply: { $0[keyPath: path] = isNull($1) ? nil : try asInt($1) }, render: { $0[keyPath: path] })
}
private func double(_ name: String, _ path: WritableKeyPath<TrainingConfig, Double>) -> ConfigKey {
    ConfigKey(name: name, apply: { $0[keyPath: path] = try asDouble($1) }, render: { $0[keyPath: path] })
}
private func optionalDouble(_ name: String, _ path: WritableKeyPath<TrainingConfig, Double?>) -> ConfigKey {
    ConfigKey(name: name, apply: { $0[keyPath: path] = isNull($1) ? nil : try asDouble($1) }, render: { $0[keyPath: path] })
}
private func bool(_ name: String, _ path: WritableKeyPath<TrainingConfig, Bool>) -> ConfigKey {
    ConfigKey(name: name, apply: { $0[keyPath: path] = try asBool($1) }, render: { $0[keyPath: path] })
}
private func optionalBool(_ name: String, _ path: WritableKeyPath<TrainingConfig, Bool?>) -> ConfigKey {
    ConfigKey(name: name, apply: { $0[keyPath: path] = isNull($1) ? nil : try asBool($1) }, render: { $0[keyPath: path] })
}
private func string(_ name: String, _ path: WritableKeyPath<TrainingConfig, String>) -> ConfigKey {
    ConfigKey(name: name, apply: { $0[keyPath: path] = try asString($1) }, render: { $0[keyPath: path] })
}
private func optionalString(_ name: String, _ path: WritableKeyPath<TrainingConfig, String?>) -> ConfigKey {
    ConfigKey(name: name, apply: { $0[keyPath: path] = isNull($1) ? nil : try asString($1) }, render: { $0[keyPath: path] })
}

private func float(_ name: String, _ path: WritableKeyPath<TrainingConfig, Float>) -> ConfigKey {
    ConfigKey(name: name, apply: { $0[keyPath: path] = Float(try asDouble($1)) }, render: { Double($0[keyPath: path]) })
}

/// A key whose values are the raw values of an enum.
private func choice<E: RawRepresentable & CaseIterable>(_ name: String, _ path: WritableKeyPath<TrainingConfig, E>) -> ConfigKey where E.RawValue == String {
    ConfigKey(name: name, apply: { config, value in
        guard let text = value as? String, let parsed = E(rawValue: text) else {
            throw ConfigTypeError(expected: "one of " + E.allCases.map(\.rawValue).joined(separator: ", "))
        }
        config[keyPath: path] = parsed
    }, render: { $0[keyPath: path].rawValue })
}

/// A list of integers, as a YAML list or a comma-separated string ("-2,-1").
private func intList(_ name: String, _ path: WritableKeyPath<TrainingConfig, [Int]>) -> ConfigKey {
    ConfigKey(name: name, apply: { config, value in
        if let list = value as? [Any] {
            config[keyPath: path] = try list.map(asInt)
        } else if let text = value as? String {
            config[keyPath: path] = try text.split(separator: ",").map { try asInt(String($0)) }
        } else if let single = value as? Int {
            config[keyPath: path] = [single]
        } else {
            throw ConfigTypeError(expected: "a list of integers such as -2,-1")
        }
    }, render: { $0[keyPath: path] })
}
