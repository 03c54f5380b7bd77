import Distill
import Foundation
import Models
import Settings
import Tensors

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
                "Bring images to this side with timm's transforms (RandomResizedCrop and the rest in training, resize and centre crop in evaluation); image folders default to 224."
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
                "With input_size: timm's RandAugment string, e.g. rand-m9-mstd0.5-inc1 (launch/README.md lists its parts); turns color_jitter off, as timm."
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
                "Per-channel normalisation: the dataset's statistics, or timm's ImageNet or Inception constants (as ImageNet-pretrained models expect)."
        ),
        field(
            "val_split", \.valSplit, "model and data",
            range: SettingRange(minimum: 0, minimumIsExclusive: true, maximum: 100_000_000),
            help:
                "Hold out this many training images (or this fraction, below 1), stratified by class and seeded: best.safetensors is chosen on them, never on test."
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
        field(
            "optimizer", \.optimizer, "schedule",
            help:
                "Optimizer. Unset: OFA's recipe for the student's family (CNN: sgd, lr 0.05, weight decay 2e-3, warm-up 1% of the run; ViT and MLP: adamw, lr 5e-4, weight decay 0.05, warm-up 1/15 of the run, clip_grad_norm 5), each setting you give kept."
        ),
        field(
            "lr", \.learningRate, "schedule", range: SettingRange(minimum: 0, minimumIsExclusive: true, maximum: 100),
            help: "Peak learning rate (with --optimizer set: default 0.05 for SGD, 1e-3 for AdamW)."),
        field("momentum", \.momentum, "schedule", range: .between(0, 1, upperExclusive: true), help: "SGD momentum."),
        field("nesterov", \.nesterov, "schedule", help: "Nesterov momentum."),
        field(
            "weight_decay", \.weightDecay, "schedule", range: .between(0, 10),
            help:
                "Weight decay (with --optimizer set: default 5e-4 for SGD, 0.05 for AdamW); never on biases, norms, embeddings."
        ),
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
            "checkpoint_minutes", \.checkpointMinutes, "run folder",
            range: SettingRange(minimum: 0, minimumIsExclusive: true, maximum: 1e6),
            help:
                "Minutes between checkpoints, timed on rank 0 (besides checkpoint_every and each epoch's end): what a failure can cost at most."
        ),
        field(
            "divergence_factor", \.divergenceFactor, "run folder", range: .between(0, 1e12),
            help:
                "Stop the run when the loss exceeds this multiple of its mean over the first steps (the first min(log_every, 10)), or is not finite; 0 stops on a non-finite loss only."
        ),
        field(
            "threads", \.threads, "run folder", range: .between(1, 1024), help: "Threads for OpenBLAS and the kernels."),

        field(
            "precision", \.precision, "schedule",
            help:
                "The student's arithmetic: fp32, or bf16 (PyTorch's CPU autocast: convolutions, linear layers and attention products take bfloat16 inputs and accumulate in float32; everything else, weights, gradients and optimizer state stay float32). Twice the speed where the CPU has AVX512_BF16 or AMX; emulated, with no speed gained, elsewhere."
        ),
        field(
            "teacher", \.teacher, "distillation",
            help: "Frozen teacher: a model.safetensors written by sfkd train on the same dataset."),
        field(
            "teacher_precision", \.teacherPrecision, "distillation",
            help:
                "The frozen teacher's arithmetic: fp32, or bf16 (its forward under bfloat16 autocast, inline or on teacher ranks; its logits and features handed to the loss in float32)."
        ),
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
                "Gradient averaging: allreduce (float32), bf16 (bfloat16 on the wire, half the bytes) or zero1 (ZeRO stage 1: sharded optimizer state); cluster/README.md says more."
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
}
