import Data
import Distill
import Foundation
import Settings
import Tensors

public enum OptimizerChoice: String, SettingChoice { case sgd, adamw }
public enum ScheduleChoice: String, SettingChoice { case cosine, step, constant }
/// Per-channel normalisation: the dataset's own statistics, or timm's constants
/// (`IMAGENET_DEFAULT_MEAN/STD`, `IMAGENET_INCEPTION_MEAN/STD`), as models pretrained on ImageNet expect.
public enum NormalizationChoice: String, SettingChoice { case dataset, imagenet, inception }
extension ReplicaGroup.SyncMethod: SettingChoice {}
extension Precision: SettingChoice {}
extension Interpolation: SettingChoice {}
extension ImagePipeline.TrainInterpolation: SettingChoice {}

/// Everything a training run needs. It comes from defaults, then a YAML file, then command-line
/// flags, all through one table of declared settings (`ConfigKeys.swift`), so a wrong key, type
/// or range gets the same clear error wherever it was written. The resolved config is saved as
/// `config.yaml` in the run folder.
public struct TrainingConfig: Equatable, Sendable {
    public var model = ""
    /// The model's keyword arguments (`ModelArguments` text: `layers=2,2,2,2 stem=cifar`).
    public var modelArguments = ""
    public var dataset = "fashion-mnist"
    public var dataDirectory: String?
    /// A `folder` dataset's evaluation split, when not DATA_DIR/val.
    public var valDirectory: String?
    /// The side images are brought to by timm's transforms (nil: a folder's 224, other datasets' own size).
    public var inputSize: Int?
    public var scale = NumberPair(0.08, 1)
    public var ratio = NumberPair(3.0 / 4, 4.0 / 3)
    public var trainInterpolation = ImagePipeline.TrainInterpolation.random
    public var colorJitter = 0.4
    /// timm's RandAugment string (`rand-m9-mstd0.5-inc1`); nil: none.
    public var autoAugment: String?
    public var erasingProbability = 0.0
    public var cropPercent = 0.875
    public var interpolation = Interpolation.bicubic
    public var skipBadImages = false
    /// Training images held out for validation: a count, or a fraction below 1 (nil: none).
    public var valSplit: Double?
    /// The seed that picks the validation images (nil: `seed`); fixing it keeps one validation
    /// split over a sweep's seeds and out of a teacher's training.
    public var valSeed: Int?
    /// Score the teacher on this run's splits before training (its accuracy goes into summary.json).
    public var evaluateTeacher = true
    public var normalization = NormalizationChoice.dataset
    /// timm's Mixup / CutMix (alphas; 0 turns each off).
    public var mixup = 0.0
    public var cutmix = 0.0
    public var mixupProbability = 1.0
    public var mixupSwitchProbability = 0.5
    /// Worker threads that decode and augment batches ahead of the step.
    public var loaderThreads = 2
    public var epochs: Int?
    public var steps: Int?
    public var batchSize = 128
    public var evalBatchSize = 500
    /// nil: the student family's recipe (`StudentRecipe`).
    public var optimizer: OptimizerChoice?
    public var learningRate: Double?
    public var momentum = 0.9
    public var nesterov = false
    public var weightDecay: Double?
    public var schedule = ScheduleChoice.cosine
    public var warmupEpochs: Double?
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
    /// Minutes between checkpoints (besides `checkpointEverySteps` and each epoch's end).
    public var checkpointMinutes: Double?
    /// Stop when the loss exceeds this multiple of its first steps' mean (0: never).
    public var divergenceFactor = 100.0
    public var threads: Int?
    /// An sfkd model file to start from instead of a random initialisation (`--init`).
    public var initialization: String?
    /// Start a new classifier instead of the one in `initialization` (`--reset-head`).
    public var resetHead = false
    /// `model.safetensors` of the frozen teacher (`--teacher`).
    public var teacher: String?
    /// A `MethodRegistry` name.
    public var method = CrossEntropyOnly.name
    /// The methods' settings (`MethodRegistry.settings`), by key.
    public var distillation = SettingValues()
    /// Ranks that run the frozen teacher for the others (`--teacher-ranks`); 0 runs it inline.
    public var teacherRanks = 0
    /// Gradient bucket size in MiB after the first ~1 MiB bucket (`--bucket-mb`).
    public var bucketMegabytes = 8.0
    /// Allreduce gradient buckets while backward runs (`--no-overlap` turns it off).
    public var overlap = true
    /// The student's products and convolutions: float32 or bfloat16 autocast (`--precision`).
    public var precision = Precision.float32
    /// The frozen teacher's (`--teacher-precision`).
    public var teacherPrecision = Precision.float32
    /// How gradient buckets are averaged across student ranks.
    public var gradientSync = ReplicaGroup.SyncMethod.allreduce
    /// BatchNorm with statistics over the global batch (`--sync-bn`).
    public var syncBatchNorm = false
    /// Seconds an MPI operation may wait before the job is aborted with a report (`--comm-timeout`).
    public var communicationTimeout = 300.0

    public init() {}

    /// How a `folder` dataset is read.
    public var folderOptions: DatasetRegistry.FolderOptions {
        get throws {
            var options = DatasetRegistry.FolderOptions()
            options.valDirectory = valDirectory
            options.skipBadImages = skipBadImages
            options.pipeline = try pipeline(size: inputSize ?? 224)
            return options
        }
    }

    /// The settings of timm's transforms that differ from their defaults.
    var changedPipelineKeys: [String] {
        let defaults = TrainingConfig()
        return ["scale", "ratio", "train_interpolation", "color_jitter", "aa", "reprob", "crop_pct", "interpolation"]
            .filter { name in
                guard let key = Self.key(named: name) else { return false }
                return key.get(self) != key.get(defaults)
            }
    }

    /// timm's transforms at `size`, from the settings.
    public func pipeline(size: Int) throws -> ImagePipeline {
        var pipeline = ImagePipeline(size: size)
        pipeline.scale = [scale.low, scale.high]
        pipeline.ratio = [ratio.low, ratio.high]
        pipeline.trainInterpolation = trainInterpolation
        pipeline.flipProbability = horizontalFlip == false ? 0 : 0.5
        pipeline.colorJitter = colorJitter
        if let autoAugment {
            let randAugment = try RandAugment(autoAugment)
            pipeline.randAugment = randAugment
            // timm turns colour jitter off under RandAugment, except with its '3a' sets.
            if !randAugment.keepsColorJitter { pipeline.colorJitter = 0 }
        }
        pipeline.erasingProbability = erasingProbability
        pipeline.cropPercent = cropPercent
        pipeline.interpolation = interpolation
        return pipeline
    }

    /// The optimizer, learning rate and weight decay used when none is given: with an optimizer
    /// set, what works for it at batch 128; with none, `withStudentRecipe` fills them in first.
    public var resolvedOptimizer: OptimizerChoice { optimizer ?? studentRecipe?.optimizer ?? .sgd }
    public var resolvedLearningRate: Double {
        learningRate ?? studentRecipe?.learningRate ?? (resolvedOptimizer == .adamw ? 1e-3 : 0.05)
    }
    public var resolvedWeightDecay: Double {
        weightDecay ?? studentRecipe?.weightDecay ?? (resolvedOptimizer == .adamw ? 0.05 : 5e-4)
    }

    /// The registered type of `method`.
    public var methodType: any DistillationMethod.Type {
        get throws { try MethodRegistry.method(named: method) }
    }

    /// Method settings given a value that the selected method does not read (another
    /// method's), which the start-up warns about.
    public var unreadMethodSettings: [String] {
        get throws {
            let read = Set(try methodType.settings.map(\.name))
            return distillation.changedNames.filter { !read.contains($0) }
        }
    }

    /// Checks every value against its declared range, then values that must agree; errors name
    /// the key. `teacherGiven`: the caller brings the teacher model itself (benchmarks).
    public func validate(teacherGiven: Bool = false) throws {
        guard !model.isEmpty else { throw UserError("config: 'model' is required (--model NAME)") }
        guard !output.isEmpty else { throw UserError("config: 'out' is empty; name a run folder (--out DIR)") }
        for key in Self.keys { try key.spec.check(key.get(self)) }
        if epochs != nil && steps != nil { throw UserError("config: give 'epochs' or 'steps', not both") }
        for (name, pair) in [("scale", scale), ("ratio", ratio)] where pair.low > pair.high {
            throw UserError("config: '\(name)' is \(pair.low),\(pair.high); give the low end first")
        }
        if let autoAugment { _ = try RandAugment(autoAugment) }
        if resetHead && initialization == nil {
            throw UserError(
                "config: 'reset_head' starts a new classifier for the weights of 'init'; give --init FILE too")
        }
        let method = try methodType
        if method.needsTeacher && teacher == nil && !teacherGiven {
            throw UserError(
                "config: method '\(method.name)' needs a teacher: pass --teacher FILE (a model.safetensors written by sfkd train)"
            )
        }
        if teacherRanks > 0 && !method.needsTeacher {
            throw UserError(
                "config: 'teacher_ranks' \(teacherRanks) needs a distillation method with a teacher; method is '\(method.name)'"
            )
        }
    }
}
