import Cluster
import Data
import Distill
import Foundation
import Layers
import Models
import Tensors

/// Training, in one process or data parallel under mpirun: builds dataset, model, method and
/// optimizer from a config, then runs the steps, evaluating each epoch and checkpointing into
/// the run folder. Its collaborators do the work: `JobLayout` (which rank does what),
/// `ReplicaGroup` (the replicas agree and average), a `TeacherSource` (inline or offloaded),
/// `TrainingStep` (one optimizer step) and `RunFolder` (every file). Rank 0 alone prints and
/// writes; an error on one rank aborts the job (main.swift).
public final class Trainer {
    public let config: TrainingConfig
    public let splits: DatasetSplits
    public let modules: StudentAndHelpers
    public let method: any DistillationMethod
    public let description: ModelDescription
    /// The frozen teacher, when the method distils from one.
    public let teacher: (any ImageClassifier)?
    public let layout: JobLayout
    public let stepsPerEpoch: Int
    public let totalSteps: Int
    let optimizer: any Optimizer
    let schedule: any LearningRateSchedule
    let data: TrainingData
    let folder: RunFolder
    let progress = ProgressReporter()

    public var model: any ImageClassifier { modules.student }

    /// Builds everything and checks the config before any file is written. `method` replaces
    /// the config's method (tests inject one).
    public init(config: TrainingConfig, splits: DatasetSplits? = nil, method: (any DistillationMethod)? = nil) throws {
        try config.validate()
        self.config = config
        layout = try JobLayout(world: Communicator.world, teacherRanks: config.teacherRanks, batchSize: config.batchSize)
        progress.enabled = layout.isLeader
        if let threads = config.threads { Threads.configure(threads) }
        GlobalRandom.seed(UInt64(config.seed))
        var splits = try splits ?? DatasetRegistry.load(config.dataset, directory: config.dataDirectory, folder: try config.folderOptions)
        // With input_size, any dataset goes through timm's transforms (OFA's CIFAR-100 at 224).
        if let size = config.inputSize, splits.train.pipeline == nil { splits = splits.with(try config.pipeline(size: size)) }
        if config.normalization != .dataset {
            guard splits.shape[0] == 3 else {
                throw UserError("config: 'normalization: \(config.normalization.rawValue)' is for RGB images; '\(splits.name)' has \(splits.shape[0]) channel(s)")
            }
            let imagenet = config.normalization == .imagenet
            splits = splits.normalized(mean: imagenet ? [0.485, 0.456, 0.406] : [0.5, 0.5, 0.5], std: imagenet ? [0.229, 0.224, 0.225] : [0.5, 0.5, 0.5])
        }
        if let valSplit = config.valSplit {
            splits = splits.holdingOut(try ValidationSplit.count(for: valSplit, trainCount: splits.train.count, classes: splits.classes), seed: UInt64(config.valSeed ?? config.seed))
        }
        if splits.train.pipeline == nil, !config.changedPipelineKeys.isEmpty {
            throw UserError("config: \(config.changedPipelineKeys.map { "'\($0)'" }.joined(separator: ", ")) set timm's transforms, which run with input_size; give --input-size (the dataset's own size is \(splits.shape[1]))")
        }
        if splits.train.pipeline != nil, config.cropPadding != nil {
            throw UserError("config: 'crop_padding' is the random crop at a dataset's own size; with input_size (or an image folder) the crop is RandomResizedCrop: set 'scale' and 'ratio' instead")
        }
        self.splits = splits
        let arguments = try ModelArguments(config.modelArguments)
        let student = try ModelRegistry.make(config.model, inputShape: splits.shape, classes: splits.classes, seed: UInt64(config.seed), arguments: arguments)
        if let initialization = config.initialization {
            try WeightInitialization.apply(to: student, from: initialization, resetHead: config.resetHead, arguments: arguments, inputShape: splits.shape)
        }
        var description = ModelDescription(architecture: config.model, arguments: arguments, dataset: splits.name, classes: splits.classes,
                                           inputShape: splits.shape, mean: splits.mean, std: splits.std)
        description.classNames = splits.train.classNames
        self.description = description
        stepsPerEpoch = splits.train.count / config.batchSize
        guard stepsPerEpoch >= 1 else {
            throw UserError("config: 'batch_size' \(config.batchSize) is larger than the \(splits.train.count) training images of '\(splits.name)'")
        }
        let (epochSteps, overflow) = (config.epochs ?? 1).multipliedReportingOverflow(by: stepsPerEpoch)
        guard !overflow else { throw UserError("config: 'epochs' \(config.epochs ?? 1) x \(stepsPerEpoch) steps per epoch is more steps than can be counted") }
        totalSteps = config.steps ?? epochSteps
        let methodType = try config.methodType
        teacher = try methodType.needsTeacher ? Self.openTeacher(config.teacher!, for: splits) : nil
        let context = MethodContext(settings: config.distillation, studentTaps: ModelRegistry.describeTaps(student, inputShape: splits.shape),
                                    teacherTaps: teacher.map { ModelRegistry.describeTaps($0, inputShape: splits.shape) } ?? [],
                                    classes: splits.classes, seed: UInt64(config.seed), labelSmoothing: Float(config.labelSmoothing),
                                    stepsPerEpoch: stepsPerEpoch, totalSteps: totalSteps)
        self.method = try method ?? methodType.init(context: context)
        modules = StudentAndHelpers(student: student, helpers: self.method.helpers)
        optimizer = layout.isStudent ? config.makeOptimizer(for: modules, rank: layout.group.rank, ranks: layout.studentRanks) : config.makeOptimizer(for: modules)
        schedule = config.makeSchedule(stepsPerEpoch: stepsPerEpoch, totalSteps: totalSteps)
        var augmentation = splits.defaultAugmentation
        if let padding = config.cropPadding { augmentation.cropPadding = padding }
        if let flip = config.horizontalFlip { augmentation.horizontalFlip = flip }
        var data = TrainingData(splits: splits, augmentation: augmentation, seed: UInt64(config.seed), globalBatch: config.batchSize,
                            studentRanks: layout.studentRanks, stepsPerEpoch: stepsPerEpoch, totalSteps: totalSteps, loaderThreads: config.loaderThreads)
        data.mixup.mixupAlpha = config.mixup
        data.mixup.cutmixAlpha = config.cutmix
        data.mixup.probability = config.mixupProbability
        data.mixup.switchProbability = config.mixupSwitchProbability
        data.mixup.labelSmoothing = config.labelSmoothing
        if data.mixup.isActive, (config.batchSize / layout.studentRanks) % 2 != 0 {
            throw UserError("config: Mixup/CutMix pair each sample with the one half a batch away on the same rank; 'batch_size' \(config.batchSize) over \(layout.studentRanks) student rank(s) leaves an odd local batch: use a batch size divisible by \(2 * layout.studentRanks)")
        }
        self.data = data
        folder = RunFolder(path: config.output, layout: layout)
    }

    /// The frozen teacher of `path`, checked against the run's dataset.
    static func openTeacher(_ path: String, for splits: DatasetSplits) throws -> any ImageClassifier {
        let (teacher, teacherDescription, file) = try ModelFile.open(path)
        guard teacherDescription.dataset == splits.name else {
            throw UserError("teacher \(file) was trained on '\(teacherDescription.dataset)'; this run uses '\(splits.name)' (a teacher must be trained, or imported with sfkd import --dataset, for this run's dataset)")
        }
        try teacherDescription.checkCompatible(with: splits, path: file)
        return teacher
    }

    /// Runs to the end (or from the newest complete checkpoint with `resume`) and returns the
    /// summary (on student ranks; teacher ranks return nil when their students are done).
    @discardableResult
    public func run(resume: Bool = false) throws -> RunSummary? { try run(RunOptions(resume: resume)) }

    @discardableResult
    public func run(_ options: RunOptions) throws -> RunSummary? {
        let watchdog = try CommunicationWatchdog(world: layout.world, timeout: config.communicationTimeout)
        defer { withExtendedLifetime(watchdog) {} }
        // Every rank must run the same configuration (paths and threads may differ).
        try ReplicaSync.checkAgreement(config.trajectoryLines, communicator: layout.world, what: "configuration", item: "key")
        let fresh = TrainingState(step: 0, random: [GlobalRandom.generator.state.0, GlobalRandom.generator.state.1], trainedSeconds: 0, trainedImages: 0)
        var state = try folder.start(config: config, options: options, modules: modules, optimizer: optimizer, fresh: fresh,
                                     totalSteps: totalSteps, classNames: splits.train.classNames, progress: progress)
        GlobalRandom.generator = RandomGenerator(state: (state.random[0], state.random[1]))
        let teacherLink = layout.teacherRanks > 0 ? try layout.world.duplicate(name: "teacher-offload") : nil
        if let teacherLink, !layout.isStudent {
            try serveTeacherOutputs(link: teacherLink, fromStep: state.step)
            return nil
        }
        // From here a stop signal is recorded and acted on at the next step boundary.
        StopSignal.install()
        defer { StopSignal.uninstall() }
        let replicas = try ReplicaGroup(modules: modules, optimizer: optimizer, communicator: layout.group, bucketMegabytes: config.bucketMegabytes,
                                        overlap: config.overlap, syncBatchNorm: config.syncBatchNorm, sync: config.gradientSync)
        let step = TrainingStep(modules: modules, method: method, optimizer: optimizer, replicas: replicas,
                                teacher: try teacherSource(link: teacherLink, firstStep: state.step), clipNorm: config.clipGradientNorm.map(Float.init))
        announce()
        let teacherRecord = try evaluateTeacher(replicas)
        let started = Date()
        let batches = TrainingData.Stream(data, rank: replicas.rank)
        var window = MetricsWindow(), epochWindow = MetricsWindow()
        var dataWait = DataWaitMonitor()
        var evaluation: Scores?
        modules.train()
        while state.step < totalSteps {
            let epoch = state.step / stepsPerEpoch
            let waitStart = Date()
            let batch = try batches.batch(step: state.step)
            let waited = Date().timeIntervalSince(waitStart)
            let lr = schedule.learningRate(atStep: state.step)
            let stepStart = Date()
            let result: StepResult
            do {
                result = try step.run(batch, step: state.step, learningRate: lr)
            } catch let error as NonFiniteLoss {
                throw UserError("non-finite loss (\(error.loss)) at step \(state.step) (epoch \(epoch)); stopping: \(folder.recoveryAdvice)")
            }
            state.step += 1
            state.trainedSeconds += Date().timeIntervalSince(stepStart)
            state.trainedImages += config.batchSize
            window.add(result.statistics, images: config.batchSize, dataWait: waited, phases: result.phases)
            epochWindow.add(result.statistics, images: config.batchSize, dataWait: waited, phases: result.phases)
            dataWait.add(waited, step: Date().timeIntervalSince(waitStart))
            if let warning = dataWait.warning(loaderThreads: config.loaderThreads) { progress.message(warning) }
            try report(&window, state: state, epoch: epoch, learningRate: lr, replicas: replicas)
            let epochEnded = state.step % stepsPerEpoch == 0 || state.step == totalSteps
            if epochEnded {
                let training = epochWindow.record(step: state.step, epoch: epoch, learningRate: lr, communication: nil)
                evaluation = try evaluateEpoch(replicas, state: &state, epoch: epoch, training: training)
            }
            let stopping = result.statistics.stopRequests > 0
            // A stop (a preemption) keeps everything up to this step.
            if epochEnded || stopping || (config.checkpointEverySteps.map { state.step % $0 == 0 } ?? false) {
                try checkpoint(&state, replicas: replicas)
            }
            if stopping { throw stopped(atStep: state.step) }
        }
        let final = try evaluation ?? evaluateSplits(replicas)
        var summary = RunSummary(model: config.model, dataset: splits.name, method: teacher == nil ? nil : type(of: method).name,
                                 parameters: model.parameterCount, testTop1: final.test.top1, testTop5: final.test.top5, testLoss: final.test.loss,
                                 imagesPerSecond: state.imagesPerSecond, steps: state.step, epochs: Double(state.step) / Double(stepsPerEpoch),
                                 wallSeconds: Date().timeIntervalSince(started), threads: Threads.count, ranks: layout.world.size,
                                 studentRanks: layout.studentRanks, teacherRanks: layout.teacherRanks)
        summary.valTop1 = final.validation?.top1
        summary.valTop5 = final.validation?.top5
        summary.valLoss = final.validation?.loss
        summary.best = state.best
        summary.seed = config.seed
        summary.configHash = RunRecord.configHash(config)
        summary.version = RunRecord.version
        summary.trainImages = splits.train.count
        summary.valImages = splits.validation?.count
        summary.testImages = splits.test.count
        summary.helperParameters = modules.helperParameterCount
        summary.teacher = teacherRecord
        if config.skipBadImages {
            let files = [splits.train.files, splits.validation?.files, splits.test.files].compactMap { $0 }
            let bad = try files.flatMap { try badImages($0, replicas: replicas) }
            summary.badImages = bad.count
            for (path, reason) in bad.prefix(20) { progress.message("skipped a bad image: \(path): \(reason ?? "found by another rank")") }
            if bad.count > 20 { progress.message("... and \(bad.count - 20) more bad images") }
        }
        try replicas.synchronizeBuffers()
        try folder.finish(student: model, description: description, summary: summary)
        progress.message("done: test top-1 \(percent(final.test.top1))% after \(state.step) steps; \(folder.file("model.safetensors"))")
        return summary
    }

    /// The bad images of a split that any student rank found (each decodes only its shard), with
    /// the reason where this rank found it.
    private func badImages(_ files: ImageFiles, replicas: ReplicaGroup) throws -> [(path: String, reason: String?)] {
        let local = Dictionary(files.badImages, uniquingKeysWith: { first, _ in first })
        var found = files.folder.paths.map { local[$0] == nil ? Int32(0) : 1 }
        try replicas.communicator.allreduce(&found, .max, context: "bad images of \(files.folder.root)")
        return zip(files.folder.paths, found).filter { $0.1 != 0 }.map { ($0.0, local[$0.0]) }
    }

    /// The progress line after every step, and a `metrics.jsonl` line every `log_every` steps.
    private func report(_ window: inout MetricsWindow, state: TrainingState, epoch: Int, learningRate: Float, replicas: ReplicaGroup) throws {
        let remaining = Double((totalSteps - state.step) * config.batchSize) / state.imagesPerSecond
        progress.update("epoch \(epoch + 1)/\((totalSteps + stepsPerEpoch - 1) / stepsPerEpoch) step \(state.step)/\(totalSteps) loss \(String(format: "%.4f", window.meanLoss)) acc \(String(format: "%.1f", 100 * window.accuracy))% lr \(String(format: "%.4g", learningRate)) \(Int(state.imagesPerSecond)) img/s data \(Int((100 * window.dataWaitFraction).rounded()))% ETA \(ProgressReporter.duration(remaining))")
        if state.step % config.logEverySteps == 0 || state.step == totalSteps {
            try folder.log(window.record(step: state.step, epoch: epoch, learningRate: learningRate,
                                     communication: replicas.takeCommunicationTimes(steps: window.stepCount)))
        }
    }

    /// Scores on the validation split (when there is one) and on test.
    struct Scores {
        var validation: EvaluationResult?
        var test: EvaluationResult
    }

    /// The epoch's evaluation on both splits, logged with the epoch's training means (the
    /// `summary.csv` row) and printed; a better validation top-1 than before writes
    /// `best.safetensors` and becomes the state's best.
    private func evaluateEpoch(_ replicas: ReplicaGroup, state: inout TrainingState, epoch: Int, training: MetricsRecord) throws -> Scores {
        let scores = try evaluateSplits(replicas)
        var record = MetricsRecord(kind: .eval, step: state.step, epoch: epoch,
                                   values: ["lr": training["lr"] ?? 0, "test_top1": scores.test.top1, "test_top5": scores.test.top5,
                                            "test_loss": scores.test.loss])
        for (key, value) in training.values where key == "loss" || key == "top1" || key.hasPrefix("loss_") { record["train_\(key)"] = value }
        var line = "test top-1 \(percent(scores.test.top1))%, top-5 \(percent(scores.test.top5))%, loss \(String(format: "%.4f", scores.test.loss))"
        if let validation = scores.validation {
            record["val_top1"] = validation.top1
            record["val_top5"] = validation.top5
            record["val_loss"] = validation.loss
            line = "validation top-1 \(percent(validation.top1))%, " + line
            if validation.top1 > (state.best?.valTop1 ?? -1) {
                state.best = BestEpoch(epoch: epoch, step: state.step, valTop1: validation.top1, valTop5: validation.top5, valLoss: validation.loss,
                                       testTop1: scores.test.top1, testTop5: scores.test.top5, testLoss: scores.test.loss)
                // evaluateSplits synchronised the buffers: the student is rank 0's.
                try folder.saveBest(student: model, description: description, epoch: epoch)
                line += " (best so far)"
            }
        }
        try folder.log(record)
        progress.message("epoch \(epoch + 1) step \(state.step): \(line); \(Int(state.imagesPerSecond)) img/s")
        return scores
    }

    /// The frozen teacher's own scores on this run's splits, printed before training.
    private func evaluateTeacher(_ replicas: ReplicaGroup) throws -> TeacherRecord? {
        guard let teacher, config.evaluateTeacher else { return nil }
        let test = try evaluate(teacher, on: splits.test, split: "test", replicas: replicas, what: "the teacher")
        let validation = try splits.validation.map { try evaluate(teacher, on: $0, split: "validation", replicas: replicas, what: "the teacher") }
        progress.message("teacher \(teacher.architecture): " + (validation.map { "validation top-1 \(percent($0.top1))%, " } ?? "") + "test top-1 \(percent(test.top1))%, top-5 \(percent(test.top5))%")
        return TeacherRecord(model: teacher.architecture, parameters: teacher.parameterCount, valTop1: validation?.top1, testTop1: test.top1, testTop5: test.top5)
    }

    /// The stop after step `step`, saying where a `--resume` continues from.
    private func stopped(atStep step: Int) -> TrainingStopped {
        let signal = StopSignal.received != 0 ? StopSignal.received : SIGTERM
        return TrainingStopped(signal: signal, description: "stopped by \(StopSignal.name(signal)) after step \(step) of \(totalSteps); the checkpoint of step \(step) is written: --resume continues from \(Checkpoints.folder(in: config.output))/step-\(step)",
                               everyRankStopped: layout.teacherRanks == 0)
    }

    /// `checkpoints/step-N/` with rank 0's buffers and the generator state of this step.
    private func checkpoint(_ state: inout TrainingState, replicas: ReplicaGroup) throws {
        state.random = [GlobalRandom.generator.state.0, GlobalRandom.generator.state.1]
        try replicas.synchronizeBuffers()
        try folder.saveCheckpoint(modules: modules, description: description, optimizer: try replicas.optimizerCheckpoint(), state: state, keep: config.keepCheckpoints)
    }

    /// Where the step's teacher outputs come from: a teacher rank, the teacher inline, or nowhere.
    private func teacherSource(link: Communicator?, firstStep: Int) throws -> (any TeacherSource)? {
        guard let teacher else { return nil }
        guard let link else { return InlineTeacher(model: teacher) }
        let messages = TeacherMessageLayout(teacher: teacher, inputShape: splits.shape, classes: splits.classes, tapIndices: method.teacherTapIndices)
        return try OffloadedTeacher(link: link, teacherRank: layout.teacherRank(serving: layout.group.rank), layout: messages,
                                    localBatch: layout.localBatchSize, firstStep: firstStep, totalSteps: totalSteps)
    }

    /// A teacher rank's whole run: serve its students' steps.
    private func serveTeacherOutputs(link: Communicator, fromStep firstStep: Int) throws {
        guard let teacher else { return }
        let messages = TeacherMessageLayout(teacher: teacher, inputShape: splits.shape, classes: splits.classes, tapIndices: method.teacherTapIndices)
        try TeacherServer(link: link, teacher: InlineTeacher(model: teacher), layout: messages, data: data, students: layout.servedStudents)
            .serve(fromStep: firstStep)
    }

    /// The student's scores on validation and test, with rank 0's buffers.
    func evaluateSplits(_ replicas: ReplicaGroup) throws -> Scores {
        try replicas.synchronizeBuffers()
        let validation = try splits.validation.map { try evaluate(model, on: $0, split: "validation", replicas: replicas, what: "the student at this step") }
        return Scores(validation: validation, test: try evaluate(model, on: splits.test, split: "test", replicas: replicas, what: "the student at this step"))
    }

    /// Metrics of `classifier` on `dataset` (the `split` split), each student rank evaluating every R-th sample.
    private func evaluate(_ classifier: any ImageClassifier, on dataset: ImageDataset, split: String, replicas: ReplicaGroup, what: String) throws -> EvaluationResult {
        guard dataset.count > 0 else { throw UserError("the \(split) split of '\(splits.name)' is empty: nothing to evaluate on") }
        let totals = try Evaluation.totals(classifier, on: dataset, mean: splits.mean, std: splits.std, batchSize: config.evalBatchSize,
                                           shard: replicas.rank, shards: replicas.size, loaderThreads: config.loaderThreads)
        let result = try replicas.reduce(totals).result
        try result.checkFinite(what: what, dataset: splits.name)
        return result
    }

    private func announce() {
        if let teacher {
            progress.message("distil \(teacher.architecture) -> \(config.model) with \(type(of: method).name); trainable helpers: \(modules.helperParameterCount) parameters")
        }
        let placement = layout.world.size > 1
            ? ", \(layout.studentRanks) student ranks x \(layout.localBatchSize) images" + (layout.teacherRanks > 0 ? " + \(layout.teacherRanks) teacher ranks" : "")
            : ""
        if let sharded = optimizer as? ShardedOptimizer {
            progress.message("zero1: each rank updates its shard of \(sharded.shards.buckets.count) buckets; rank 0 holds \(sharded.stateCount) of the \(sharded.fullStateCount) floats of optimizer state")
        }
        progress.message("train \(config.model) (\(model.parameterCount) parameters) on \(splits.name) \(splits.shape), \(splits.train.count) images, batch \(config.batchSize)\(placement), \(totalSteps) steps (\(stepsPerEpoch) per epoch), \(config.optimizer.rawValue) lr \(config.resolvedLearningRate), \(Threads.count) threads")
    }

    private func percent(_ fraction: Double) -> String { String(format: "%.2f", 100 * fraction) }
}

extension TrainingState {
    /// Training throughput so far (step time only: no evaluation or checkpoints).
    var imagesPerSecond: Double { Double(trainedImages) / max(trainedSeconds, 1e-9) }
}
