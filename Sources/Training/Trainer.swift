import Cluster
import Data
import Distill
import Foundation
import Layers
import Models
import Tensors

/// Training, in one process or data parallel under mpirun: builds dataset, model and optimizer
/// from a config, runs the steps, evaluates each epoch, checkpoints, and writes the run folder:
/// `config.yaml`, `metrics.jsonl`, `checkpoints/step-N/`, `model.safetensors`, `summary.json`.
///
/// Under mpirun the first R ranks are students: each holds a replica, takes batch/R samples of
/// every global batch and averages gradients with the others through `GradientSync`. The last
/// `teacher_ranks` ranks run the frozen teacher for them (`TeacherOffload.swift`). Rank 0 alone
/// prints and writes files; errors on one rank abort the job (see main.swift).
public final class Trainer {
    public let config: TrainingConfig
    public let splits: DatasetSplits
    public let model: any ImageClassifier
    public let description: ModelDescription
    public let objective: any TrainingObjective
    /// The frozen teacher, when a method distils from one.
    public let teacher: (any ImageClassifier)?
    let optimizer: any Optimizer
    let schedule: any LearningRateSchedule
    let augmentation: Augmentation
    public let stepsPerEpoch: Int
    public let totalSteps: Int
    let progress = ProgressReporter()

    let world: Communicator
    /// The student ranks (every rank without teacher ranks).
    let students: Communicator
    public let studentRanks: Int
    public let teacherRanks: Int
    /// Whether this process trains a replica (else it serves teacher outputs).
    public let isStudent: Bool
    /// This rank's samples per step.
    public let localBatchSize: Int
    var isLeader: Bool { world.rank == 0 }
    /// Set up in `run`: gradient averaging and the hang watchdog.
    var gradientSync: GradientSync?
    var watchdog: CommunicationWatchdog?

    /// Builds everything and checks the config before any file is written.
    public init(config: TrainingConfig, splits: DatasetSplits? = nil, objective: (any TrainingObjective)? = nil) throws {
        try config.validate()
        self.config = config
        world = Communicator.world
        teacherRanks = config.teacherRanks
        guard teacherRanks < world.size else {
            throw UserError("config: 'teacher_ranks' \(teacherRanks) leaves no student rank among the \(world.size) ranks of this job; start more ranks (mpirun -n \(teacherRanks + 1) or more)")
        }
        studentRanks = world.size - teacherRanks
        guard config.batchSize % studentRanks == 0 else {
            let lower = config.batchSize / studentRanks * studentRanks, upper = lower + studentRanks
            throw UserError("config: 'batch_size' \(config.batchSize) is the global batch and must divide evenly over the \(studentRanks) student ranks (\(world.size) ranks, \(teacherRanks) teacher ranks); use \(lower > 0 ? "\(lower) or " : "")\(upper)")
        }
        localBatchSize = config.batchSize / studentRanks
        isStudent = world.rank < studentRanks
        students = try world.split(color: isStudent ? 0 : 1, key: world.rank, name: isStudent ? "students" : "teachers")
        progress.enabled = world.rank == 0
        if let threads = config.threads { Threads.configure(threads) }
        GlobalRandom.seed(UInt64(config.seed))
        let splits = try splits ?? DatasetRegistry.load(config.dataset, directory: config.dataDirectory)
        self.splits = splits
        model = try ModelRegistry.make(config.model, inputShape: splits.shape, classes: splits.classes, seed: UInt64(config.seed))
        description = ModelDescription(architecture: config.model, dataset: splits.name, classes: splits.classes,
                                       inputShape: splits.shape, mean: splits.mean, std: splits.std)
        stepsPerEpoch = splits.train.count / config.batchSize
        guard stepsPerEpoch >= 1 else {
            throw UserError("config: 'batch_size' \(config.batchSize) is larger than the \(splits.train.count) training images of '\(splits.name)'")
        }
        totalSteps = config.steps ?? (config.epochs ?? 1) * stepsPerEpoch

        var settings = config.distillation
        settings.labelSmoothing = Float(config.labelSmoothing)
        settings.dkdWarmupSteps = max(1, min(20 * stepsPerEpoch, totalSteps / 4))
        if settings.method.needsTeacher, let path = config.teacher {
            let (teacherModel, teacherDescription, file) = try ModelFile.open(path)
            guard teacherDescription.dataset == splits.name else {
                throw UserError("teacher \(file) was trained on '\(teacherDescription.dataset)'; this run uses '\(splits.name)'")
            }
            try teacherDescription.checkCompatible(with: splits, path: file)
            teacherModel.eval()
            teacherModel.freeze()
            teacher = teacherModel
        } else {
            teacher = nil
        }
        if let objective {
            self.objective = objective
        } else if let teacher {
            let frozen = teacher
            let offloaded = teacherRanks > 0
            // Filled in by `run` when a teacher rank computes the outputs.
            let receiver = TeacherOutputReceiverSlot()
            self.objective = try DistillationObjective(
                settings: settings,
                studentTaps: ModelRegistry.describeTaps(model, inputShape: splits.shape),
                teacherTaps: ModelRegistry.describeTaps(teacher, inputShape: splits.shape),
                classes: splits.classes, seed: UInt64(config.seed),
                teacherOutputs: { batch in
                    if offloaded, let link = receiver.receiver { return link.next(batch: batch) }
                    return withNoGrad { frozen.forward(batch.images) }
                })
            receiverSlot = receiver
        } else {
            self.objective = CrossEntropyObjective(labelSmoothing: Float(config.labelSmoothing))
        }

        var named = model.namedParameters()
        for (prefix, module) in self.objective.auxiliaryModules { named += module.namedParameters(prefix: prefix + ".") }
        let groups = ParameterGroup.decayAndNoDecay(named, weightDecay: Float(config.resolvedWeightDecay), exempt: model.noWeightDecay)
        let lr = Float(config.resolvedLearningRate)
        optimizer = config.optimizer == "adamw"
            ? AdamW(groups: groups, learningRate: lr)
            : SGD(groups: groups, learningRate: lr, momentum: Float(config.momentum), nesterov: config.nesterov)
        let warmup = Int(config.warmupEpochs * Double(stepsPerEpoch))
        switch config.schedule {
        case "step":
            schedule = StepDecaySchedule(base: lr, stepSize: max(1, Int(config.stepSizeEpochs * Double(stepsPerEpoch))), gamma: Float(config.stepGamma))
        case "constant":
            schedule = WarmupCosineSchedule(base: lr, warmupSteps: warmup, totalSteps: Int.max / 2, minimum: lr)
        default:
            schedule = WarmupCosineSchedule(base: lr, warmupSteps: warmup, totalSteps: totalSteps, minimum: Float(config.minimumLearningRate))
        }
        var augmentation = splits.defaultAugmentation
        if let padding = config.cropPadding { augmentation.cropPadding = padding }
        if let flip = config.horizontalFlip { augmentation.horizontalFlip = flip }
        self.augmentation = augmentation
    }

    /// Where the objective finds the link to a teacher rank (`--teacher-ranks`), set in `run`.
    var receiverSlot: TeacherOutputReceiverSlot?

    var auxiliaryState: [(String, Tensor)] {
        objective.auxiliaryModules.flatMap { prefix, module in module.stateDict().map { ("aux.\(prefix).\($0.0)", $0.1) } }
    }

    /// Runs to the end (or from the newest complete checkpoint with `resume`) and returns the
    /// summary (on student ranks; teacher ranks return an empty one when their students are done).
    @discardableResult
    public func run(resume: Bool = false) throws -> [String: Any] {
        let output = config.output
        watchdog = try CommunicationWatchdog(world: world, timeout: config.communicationTimeout)
        var state = TrainingState(step: 0, random: [GlobalRandom.generator.state.0, GlobalRandom.generator.state.1], trainedSeconds: 0, trainedImages: 0)
        // Rank 0 reads the run folder (it need not be shared) and tells the others how it went.
        try onLeader("prepare the run folder \(output)", among: world) {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            let existing = Checkpoints.complete(in: output)
            if resume {
                if let newest = existing.first {
                    state = try Checkpoints.load(newest.path, model: model, optimizer: optimizer, extra: auxiliaryState)
                    progress.message("resuming from \(newest.path) (step \(state.step) of \(totalSteps))")
                } else {
                    progress.message("no complete checkpoint in \(Checkpoints.folder(in: output)); starting from step 0")
                }
            } else if let newest = existing.first {
                throw UserError("\(output) already holds checkpoints (newest \(newest.path)); pass --resume to continue that run or choose another --out")
            }
            try writeAtomically(Data(try config.yaml().utf8), to: (output as NSString).appendingPathComponent("config.yaml"))
        }
        state = try shareTrainingState(state)
        GlobalRandom.generator = RandomGenerator(state: (state.random[0], state.random[1]))
        let teacherLink = teacherRanks > 0 ? try world.duplicate(name: "teacher-offload") : nil
        if let teacherLink, !isStudent {
            try serveTeacherOutputs(link: teacherLink, fromStep: state.step)
            return [:]
        }
        try prepareStudent(firstStep: state.step, teacherLink: teacherLink)
        let metrics = isLeader ? try MetricsLog(path: (output as NSString).appendingPathComponent("metrics.jsonl")) : nil
        let started = Date()
        if let teacher {
            progress.message("distil \(teacher.architecture) -> \(config.model) with \(config.distillation.method.rawValue); trainable helpers: \(objective.auxiliaryModules.reduce(0) { $0 + $1.1.parameterCount }) parameters")
        }
        let placement = world.size > 1 ? ", \(studentRanks) student ranks x \(localBatchSize) images" + (teacherRanks > 0 ? " + \(teacherRanks) teacher ranks" : "") : ""
        progress.message("train \(config.model) (\(model.parameterCount) parameters) on \(splits.name) \(splits.shape), \(splits.train.count) images, batch \(config.batchSize)\(placement), \(totalSteps) steps (\(stepsPerEpoch) per epoch), \(config.optimizer) lr \(config.resolvedLearningRate), \(Threads.count) threads")

        var loader: BatchLoader?
        var loaderEpoch = -1
        var windowLoss = 0.0, windowCorrect = 0.0, windowImages = 0, windowSteps = 0
        var windowParts: [String: Double] = [:]
        var windowStart = Date()
        var lastEvaluation: EvaluationResult?
        model.train()
        for (_, module) in objective.auxiliaryModules { module.train() }

        while state.step < totalSteps {
            let epoch = state.step / stepsPerEpoch
            if epoch != loaderEpoch {
                loader = makeLoader(epoch: epoch, fromStep: state.step, rank: students.rank)
                loaderEpoch = epoch
            }
            guard let batch = loader?.next() else { throw UserError("internal: the loader ran out of batches at step \(state.step)") }
            let stepStart = Date()
            let lr = schedule.learningRate(atStep: state.step)
            optimizer.learningRate = lr
            let output = model.forward(batch.images)
            let (loss, parts) = objective.loss(student: output, batch: batch, step: state.step)
            let localLoss = loss.item, localCorrect = countCorrect(output.logits, batch.labels)
            if let gradientSync { gradientSync.zeroGradients() } else { optimizer.zeroGrad() }
            loss.backward()
            try gradientSync?.finish()
            // Loss, terms and accuracy of the global batch (one small allreduce among students,
            // after backward so it adds no wait between forward and backward); a non-finite loss
            // on any rank stops every rank before the update.
            let (lossValue, globalParts, correct) = try globalStatistics(loss: localLoss, parts: parts, correct: localCorrect, step: state.step)
            guard lossValue.isFinite else {
                let last = Checkpoints.complete(in: config.output).first.map { "the last complete checkpoint, \($0.path), is intact; resume from it with --resume (after lowering --lr)" }
                    ?? "no checkpoint was written yet"
                throw UserError("non-finite loss (\(lossValue)) at step \(state.step) (epoch \(epoch)); stopping: \(last)")
            }
            if let maxNorm = config.clipGradientNorm { clipGradientNorm(optimizer.groups.flatMap(\.parameters), maxNorm: Float(maxNorm)) }
            optimizer.step()
            state.step += 1
            state.trainedSeconds += Date().timeIntervalSince(stepStart)
            state.trainedImages += config.batchSize

            windowLoss += Double(lossValue); windowCorrect += correct; windowImages += config.batchSize; windowSteps += 1
            for (name, value) in globalParts { windowParts[name, default: 0] += value }
            let rate = Double(state.trainedImages) / max(state.trainedSeconds, 1e-9)
            let remaining = Double((totalSteps - state.step) * config.batchSize) / rate
            if isLeader {
                progress.update("epoch \(epoch + 1)/\((totalSteps + stepsPerEpoch - 1) / stepsPerEpoch) step \(state.step)/\(totalSteps) loss \(String(format: "%.4f", windowLoss / Double(windowSteps))) acc \(String(format: "%.1f", 100 * windowCorrect / Double(windowImages)))% lr \(String(format: "%.4g", lr)) \(Int(rate)) img/s ETA \(ProgressReporter.duration(remaining))")
            }
            if state.step % config.logEverySteps == 0 || state.step == totalSteps {
                let elapsed = Date().timeIntervalSince(windowStart)
                var record: [String: Any] = ["kind": "train", "step": state.step, "epoch": epoch, "loss": windowLoss / Double(windowSteps),
                                             "top1": windowCorrect / Double(windowImages), "lr": Double(lr),
                                             "images_per_sec": Double(windowImages) / max(elapsed, 1e-9)]
                // The objective's terms (ce, kd, wavelet0, frequency0, ...), averaged over the window.
                for (name, total) in windowParts { record["loss_\(name)"] = total / Double(windowSteps) }
                if let gradientSync, studentRanks > 1 {
                    // Seconds per step spent in allreduce on the communication thread, and the part the step waited for.
                    record["allreduce_seconds"] = gradientSync.communicationSeconds / Double(windowSteps)
                    record["allreduce_exposed_seconds"] = gradientSync.waitSeconds / Double(windowSteps)
                    gradientSync.resetTimers()
                }
                metrics?.append(record)
                windowLoss = 0; windowCorrect = 0; windowImages = 0; windowSteps = 0; windowParts = [:]; windowStart = Date()
            }
            let epochEnded = state.step % stepsPerEpoch == 0 || state.step == totalSteps
            if epochEnded {
                let result = try evaluate()
                lastEvaluation = result
                metrics?.append(["kind": "eval", "step": state.step, "epoch": epoch, "test_top1": result.top1, "test_top5": result.top5, "test_loss": result.loss])
                progress.message("epoch \(epoch + 1) step \(state.step): test top-1 \(String(format: "%.2f", 100 * result.top1))%, top-5 \(String(format: "%.2f", 100 * result.top5))%, loss \(String(format: "%.4f", result.loss)); \(Int(rate)) img/s")
            }
            if epochEnded || (config.checkpointEverySteps.map { state.step % $0 == 0 } ?? false) {
                state.random = [GlobalRandom.generator.state.0, GlobalRandom.generator.state.1]
                try synchronizeBuffers()
                let saved = state
                try onLeader("write the checkpoint of step \(state.step)", among: students) {
                    _ = try Checkpoints.save(model: model, description: description, optimizer: optimizer, extra: auxiliaryState,
                                             state: saved, output: config.output, keep: config.keepCheckpoints)
                }
            }
        }
        loader = nil

        let result = try lastEvaluation ?? evaluate()
        var summary: [String: Any] = [
            "model": config.model, "dataset": splits.name, "parameters": model.parameterCount,
            "test_top1": result.top1, "test_top5": result.top5, "test_loss": result.loss,
            "images_per_sec": Double(state.trainedImages) / max(state.trainedSeconds, 1e-9),
            "steps": state.step, "epochs": Double(state.step) / Double(stepsPerEpoch),
            "wall_seconds": Date().timeIntervalSince(started), "threads": Threads.count,
            "ranks": world.size, "student_ranks": studentRanks, "teacher_ranks": teacherRanks,
        ]
        if teacher != nil { summary["method"] = config.distillation.method.rawValue }
        try synchronizeBuffers()
        try onLeader("write model.safetensors and summary.json", among: students) {
            try ModelFile.save(model, description: description, to: (output as NSString).appendingPathComponent("model.safetensors"))
            try writeJSON(summary, to: (output as NSString).appendingPathComponent("summary.json"))
        }
        progress.message("done: test top-1 \(String(format: "%.2f", 100 * result.top1))% after \(state.step) steps; \(output)/model.safetensors")
        return summary
    }

    /// The batches `rank` of the student ranks trains on in `epoch`, from `fromStep` on, prepared in the background.
    func makeLoader(epoch: Int, fromStep step: Int, rank: Int) -> BatchLoader {
        let sampler = ShardedSampler(count: splits.train.count, seed: UInt64(config.seed))
        let order = sampler.order(epoch: epoch)
        let firstStep = step % stepsPerEpoch
        let lastStep = min(stepsPerEpoch, firstStep + (totalSteps - step))
        let batches = (firstStep..<lastStep).map { sampler.indices(order: order, step: $0, globalBatch: config.batchSize, rank: rank, worldSize: studentRanks) }
        return BatchLoader(dataset: splits.train, mean: splits.mean, std: splits.std, augmentation: augmentation,
                           seed: UInt64(config.seed), epoch: epoch, batches: batches)
    }

    private func countCorrect(_ logits: Tensor, _ labels: [Int]) -> Int {
        let classes = logits.shape[1]
        var correct = 0
        for (row, label) in labels.enumerated() {
            let scores = logits.data + row * classes
            var best = 0
            for c in 1..<classes where scores[c] > scores[best] { best = c }
            if best == label { correct += 1 }
        }
        return correct
    }
}
