import ArgumentParser
import Foundation
import Tensors
import Training

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model on a dataset (flags override --config; the resolved config is saved in --out).",
        discussion: """
            Writes to --out: config.yaml, metrics.jsonl, checkpoints/step-N/ (DONE written last), \
            model.safetensors and summary.json. --resume continues from the newest complete checkpoint.
            """
    )

    @Option(help: "YAML file with any of the keys below (snake_case); flags override it.") var config: String?
    @Option(help: "Model name (sfkd info lists them).") var model: String?
    @Option(help: "Dataset name: fashion-mnist (default), mnist, cifar10, cifar100, npy, synthetic.") var dataset: String?
    @Option(name: .customLong("data-dir"), help: "Folder with the dataset files.") var dataDirectory: String?
    @Option(help: "Epochs to train (default 1).") var epochs: Int?
    @Option(help: "Optimizer steps to train, instead of --epochs.") var steps: Int?
    @Option(name: .customLong("batch-size"), help: "Global batch size (default 128).") var batchSize: Int?
    @Option(name: .customLong("eval-batch-size"), help: "Batch size for evaluation (default 500).") var evalBatchSize: Int?
    @Option(help: "sgd (default) or adamw.") var optimizer: String?
    @Option(help: "Peak learning rate (default 0.05 for SGD, 1e-3 for AdamW).") var lr: Double?
    @Option(help: "SGD momentum (default 0.9).") var momentum: Double?
    @Flag(help: "Nesterov momentum.") var nesterov = false
    @Option(name: .customLong("weight-decay"), help: "Weight decay (default 5e-4 for SGD, 0.05 for AdamW); never on biases, norms, embeddings.") var weightDecay: Double?
    @Option(help: "cosine (default), step or constant.") var schedule: String?
    @Option(name: .customLong("warmup-epochs"), help: "Linear warm-up length in epochs (may be fractional).") var warmupEpochs: Double?
    @Option(name: .customLong("min-lr"), help: "Learning rate at the end of the cosine schedule.") var minLR: Double?
    @Option(name: .customLong("label-smoothing"), help: "Cross-entropy label smoothing (default 0.1).") var labelSmoothing: Double?
    @Option(name: .customLong("clip-grad-norm"), help: "Clip gradients to this global L2 norm.") var clipGradNorm: Double?
    @Option(name: .customLong("crop-padding"), help: "Random-crop padding in pixels (0 turns cropping off; default per dataset).") var cropPadding: Int?
    @Option(help: "Random horizontal flips: true or false (default per dataset).") var flip: Bool?
    @Option(help: "Seed for initialisation, data order and augmentation.") var seed: Int?
    @Option(help: "Run folder.") var out: String?
    @Option(name: .customLong("log-every"), help: "Steps between metrics.jsonl lines (default 50).") var logEvery: Int?
    @Option(name: .customLong("checkpoint-every"), help: "Steps between checkpoints (besides each epoch's end).") var checkpointEvery: Int?
    @Option(name: .customLong("keep-checkpoints"), help: "Complete checkpoints to keep (default 3).") var keepCheckpoints: Int?
    @Option(help: "Threads for OpenBLAS and the kernels.") var threads: Int?
    @Flag(help: "Continue from the newest complete checkpoint in --out (its config.yaml is the base).") var resume = false

    @Option(help: "Frozen teacher: a model.safetensors written by sfkd train on the same dataset.") var teacher: String?
    @Option(help: "Distillation method: none (default), kd, dkd, fitnet, ofa, sfkd.") var method: String?
    @Option(name: .customLong("kd-stages"), parsing: .unconditional, help: "Tap indices to distil, negatives from the end (default -2,-1).") var kdStages: String?
    @Option(help: "KD/DKD temperature (default 4).") var tau: Double?
    @Option(name: .customLong("lambda-ce"), help: "Weight of cross-entropy (default 1).") var lambdaCE: Double?
    @Option(name: .customLong("lambda-kd"), help: "Weight of the logit loss (default 1).") var lambdaKD: Double?
    @Option(name: .customLong("dkd-alpha"), help: "DKD target-class weight (default 1).") var dkdAlpha: Double?
    @Option(name: .customLong("dkd-beta"), help: "DKD non-target weight (default 8).") var dkdBeta: Double?
    @Option(name: .customLong("ofa-eps"), help: "OFA target exponent (default 1).") var ofaEps: Double?
    @Option(name: .customLong("feat-norm"), help: "Feature normalisation: layernorm (default) or none.") var featNorm: String?
    @Option(name: .customLong("dwt-levels"), help: "Haar levels (default 2; reduced to fit the grid).") var dwtLevels: Int?
    @Option(name: .customLong("ds2s-dim"), help: "DS2S width, a multiple of 8 (default min(C_t, 64)).") var ds2sDim: Int?
    @Option(name: .customLong("lambda-low"), help: "Wavelet loss weight of the approximation band (default 1).") var lambdaLow: Double?
    @Option(name: .customLong("lambda-high"), help: "Wavelet loss weight of the detail bands (default 1).") var lambdaHigh: Double?
    @Option(name: .customLong("lambda-wav"), help: "Weight of the wavelet loss (default 1).") var lambdaWav: Double?
    @Option(name: .customLong("lambda-freq"), help: "Weight of the Gaussian-filtered frequency loss (default 1).") var lambdaFreq: Double?
    @Option(name: .customLong("gffl-rho"), help: "Gaussian width as a fraction of min(H, W) (default 0.25).") var gfflRho: Double?
    @Option(name: .customLong("gffl-alpha"), help: "Focal exponent of the frequency loss (default 0: off).") var gfflAlpha: Double?
    @Option(name: .customLong("logit-loss"), help: "SFKD's logit term: kd (default), ofa or none.") var logitLoss: String?
    @Option(name: .customLong("lambda-fitnet"), help: "Weight of FitNet's hint loss (default 1).") var lambdaFitNet: Double?

    @Option(name: .customLong("teacher-ranks"), help: "Ranks that run the frozen teacher and stream its outputs to the students (default 0: inline).") var teacherRanks: Int?
    @Option(name: .customLong("bucket-mb"), help: "Gradient allreduce bucket size in MiB after the first 1 MiB bucket (default 8).") var bucketMB: Double?
    @Flag(name: .customLong("no-overlap"), help: "Allreduce gradients after backward instead of during it.") var noOverlap = false
    @Flag(name: .customLong("sync-bn"), help: "BatchNorm statistics over the global batch (all student ranks).") var syncBN = false
    @Option(name: .customLong("comm-timeout"), help: "Seconds an MPI operation may wait before the job aborts with a report (default 300).") var commTimeout: Double?

    func run() throws {
        // The config file may name the run folder; a resumed run starts from that folder's config.yaml.
        var fromFile = TrainingConfig()
        if let config { try fromFile.apply(yamlFile: config) }
        let fileSetsOutput = config != nil && fromFile.output != TrainingConfig().output
        let folder = out ?? (fileSetsOutput ? fromFile.output : nil)
        var resolved = TrainingConfig()
        if resume, let folder {
            let saved = (folder as NSString).appendingPathComponent("config.yaml")
            if FileManager.default.fileExists(atPath: saved) { try resolved.apply(yamlFile: saved) }
        }
        if let config { try resolved.apply(yamlFile: config) }
        let flags: [(String, Any?)] = [
            ("model", model), ("dataset", dataset), ("data_dir", dataDirectory), ("epochs", epochs), ("steps", steps),
            ("batch_size", batchSize), ("eval_batch_size", evalBatchSize), ("optimizer", optimizer), ("lr", lr),
            ("momentum", momentum), ("nesterov", nesterov ? true : nil), ("weight_decay", weightDecay), ("schedule", schedule),
            ("warmup_epochs", warmupEpochs), ("min_lr", minLR), ("label_smoothing", labelSmoothing), ("clip_grad_norm", clipGradNorm),
            ("crop_padding", cropPadding), ("flip", flip), ("seed", seed), ("out", out), ("log_every", logEvery),
            ("checkpoint_every", checkpointEvery), ("keep_checkpoints", keepCheckpoints), ("threads", threads),
            ("teacher", teacher), ("method", method), ("kd_stages", kdStages), ("tau", tau), ("lambda_ce", lambdaCE),
            ("lambda_kd", lambdaKD), ("dkd_alpha", dkdAlpha), ("dkd_beta", dkdBeta), ("ofa_eps", ofaEps), ("feat_norm", featNorm),
            ("dwt_levels", dwtLevels), ("ds2s_dim", ds2sDim), ("lambda_low", lambdaLow), ("lambda_high", lambdaHigh),
            ("lambda_wav", lambdaWav), ("lambda_freq", lambdaFreq), ("gffl_rho", gfflRho), ("gffl_alpha", gfflAlpha),
            ("logit_loss", logitLoss), ("lambda_fitnet", lambdaFitNet),
            ("teacher_ranks", teacherRanks), ("bucket_mb", bucketMB), ("overlap", noOverlap ? false : nil),
            ("sync_bn", syncBN ? true : nil), ("comm_timeout", commTimeout),
        ]
        for (key, value) in flags {
            if let value { try resolved.set(key, to: value, source: "flag --\(key.replacingOccurrences(of: "_", with: "-"))") }
        }
        // A flag for one length replaces the other from the file.
        if epochs != nil { resolved.steps = nil }
        if steps != nil { resolved.epochs = nil }
        if folder == nil { resolved.output = "runs/\(resolved.model)-\(resolved.dataset)" }
        let trainer = try Trainer(config: resolved)
        try trainer.run(resume: resume)
    }
}
