import Cluster
import Data
import Distill
import Foundation
import Models
import Settings
import Tensors

/// Training, in one process or data parallel under mpirun: the loop over a `TrainingSetup`.
/// Each step is next batch, step, records; the records go to sinks (metrics files, progress
/// line, best model), and evaluation and checkpoints have their places in the loop. Rank 0
/// alone prints and writes; an error on one rank aborts the job (main.swift).
public final class Trainer {
    public let setup: TrainingSetup
    let folder: RunFolder
    let progress = ProgressReporter()
    private var divergence: DivergenceGuard
    private var lastCheckpoint = Date()

    public var config: TrainingConfig { setup.config }
    public var model: any ImageClassifier { setup.student }

    public init(_ setup: TrainingSetup) {
        self.setup = setup
        progress.enabled = setup.layout.isLeader
        divergence = DivergenceGuard(factor: setup.config.divergenceFactor, logEvery: setup.config.logEverySteps)
        _ = FailureInjection.target  // a malformed SFKD_FAIL_AT stops here, before any file is written
        folder = RunFolder(path: setup.config.output, layout: setup.layout)
    }

    /// Builds the run and checks the config before any file is written. `method` replaces the
    /// config's method (tests inject one).
    public convenience init(
        config: TrainingConfig, splits: DatasetSplits? = nil, method: (any DistillationMethod)? = nil
    ) throws {
        self.init(try TrainingSetup(config: config, splits: splits, method: method))
    }

    /// Runs to the end (or from the newest complete checkpoint with `resume`) and returns the
    /// summary (on student ranks; teacher ranks return nil when their students are done).
    @discardableResult
    public func run(resume: Bool = false) throws -> RunSummary? { try run(RunOptions(resume: resume)) }

    @discardableResult
    public func run(_ options: RunOptions) throws -> RunSummary? {
        let layout = setup.layout, totalSteps = setup.totalSteps, stepsPerEpoch = setup.stepsPerEpoch
        let watchdog = try CommunicationWatchdog(world: layout.world, timeout: config.communicationTimeout)
        defer { withExtendedLifetime(watchdog) {} }
        var state = try start(options)
        let teacherLink = layout.teacherRanks > 0 ? try layout.world.duplicate(name: "teacher-offload") : nil
        if let teacherLink, !layout.isStudent {
            try setup.serveTeacherOutputs(link: teacherLink, fromStep: state.step)
            return nil
        }
        // From here a stop signal is recorded and acted on at the next step boundary.
        StopSignal.install()
        defer { StopSignal.uninstall() }
        let replicas = try setup.makeReplicas()
        let step = try setup.makeStep(replicas: replicas, teacherLink: teacherLink, firstStep: state.step)
        let evaluator = setup.evaluator(replicas)
        announce()
        let teacherScores = try evaluateTeacher(evaluator)
        let started = Date()
        let batches = setup.batches(rank: replicas.rank)
        let sinks = makeSinks(replicas)
        var scores: Scores?
        setup.modules.train()
        while state.step < totalSteps {
            let waitStart = Date()
            let batch = try batches.batch(step: state.step)
            let record = try train(step, batch, state: &state, waited: Date().timeIntervalSince(waitStart))
            for sink in sinks { try sink.record(record.step) }
            let epochEnded = state.step % stepsPerEpoch == 0 || state.step == totalSteps
            if epochEnded {
                // Evaluation and best.safetensors see rank 0's BatchNorm statistics on every rank.
                try replicas.synchronizeBuffers()
                let evaluation = try evaluate(
                    evaluator, state: &state, epoch: record.step.epoch, learningRate: record.step.learningRate)
                for sink in sinks { try sink.record(evaluation) }
                scores = evaluation.scores
            }
            // A stop (a preemption) keeps everything up to this step; so does a checkpoint every
            // `checkpoint_minutes`, which bounds what a failure costs.
            let requests = record.requests
            if epochEnded || requests.stop || requests.checkpoint
                || (config.checkpointEverySteps.map { state.step % $0 == 0 } ?? false)
            {
                let checkpoint = try self.checkpoint(&state, replicas: replicas)
                for sink in sinks { try sink.record(checkpoint) }
                lastCheckpoint = Date()
            }
            if requests.stop { throw stopped(atStep: state.step) }
            FailureInjection.afterStep(state.step, rank: layout.world.rank)
        }
        return try finish(state, scores: scores, evaluator: evaluator, teacher: teacherScores, started: started)
    }

    /// What the loop emits goes to: metrics.jsonl, the event file and summary.csv; best.safetensors;
    /// the progress line.
    private func makeSinks(_ replicas: ReplicaGroup) -> [any TrainingSink] {
        [
            MetricsSink(
                folder: folder, replicas: replicas, logEvery: config.logEverySteps, totalSteps: setup.totalSteps),
            BestModelKeeper(folder: folder, setup: setup),
            ProgressSink(
                progress: progress, config: config, totalSteps: setup.totalSteps, stepsPerEpoch: setup.stepsPerEpoch),
        ]
    }

    /// model.safetensors and summary.json with rank 0's buffers, after the last evaluation (or
    /// one now, when the run ended between epochs).
    private func finish(
        _ state: TrainingState, scores: Scores?, evaluator: Evaluator, teacher: TeacherRecord?, started: Date
    )
        throws -> RunSummary
    {
        let replicas = evaluator.replicas
        try replicas.synchronizeBuffers()
        let final = try scores ?? evaluator.scores(model, what: "the student at this step")
        var summary = try RunSummary(
            setup, state: state, final: final, teacher: teacher, wallSeconds: Date().timeIntervalSince(started),
            badImages: config.skipBadImages ? badImages(replicas) : nil)
        let restarts = try RestartRecord.read(folder: config.output)
        if !restarts.isEmpty { summary.restarts = restarts }
        try folder.finish(student: model, description: setup.description, summary: summary)
        progress.message(
            "done: test top-1 \(percent(final.test.top1))% after \(state.step) steps; \(folder.file("model.safetensors"))"
        )
        return summary
    }

    /// Checks that every rank runs the same configuration (paths and threads may differ), then
    /// prepares the run folder: fresh, or the newest complete checkpoint loaded.
    private func start(_ options: RunOptions) throws -> TrainingState {
        try ReplicaSync.checkAgreement(
            config.trajectoryLines, communicator: setup.layout.world, what: "configuration", item: "key")
        let fresh = TrainingState(
            step: 0, random: [GlobalRandom.generator.state.0, GlobalRandom.generator.state.1], trainedSeconds: 0,
            trainedImages: 0)
        let state = try folder.start(
            config: config, options: options, modules: setup.modules, optimizer: setup.optimizer.optimizer,
            fresh: fresh,
            totalSteps: setup.totalSteps, classNames: setup.splits.train.classNames, progress: progress)
        GlobalRandom.generator = RandomGenerator(state: (state.random[0], state.random[1]))
        return state
    }

    /// One optimizer step at the scheduled learning rate; `state` counts it.
    private func train(_ step: TrainingStep, _ batch: Batch, state: inout TrainingState, waited: Double) throws -> (
        step: StepRecord, requests: StepRequests
    ) {
        let epoch = state.step / setup.stepsPerEpoch
        let learningRate = setup.schedule.learningRate(atStep: state.step)
        let stepStart = Date()
        let result: StepResult
        do {
            // Rank 0's clock decides when a timed checkpoint is due; the step's reduce tells all.
            let minutes = setup.layout.isLeader ? config.checkpointMinutes : nil, since = lastCheckpoint
            result = try step.run(batch, step: state.step, learningRate: learningRate) {
                minutes.map { Date().timeIntervalSince(since) >= $0 * 60 } ?? false
            }
        } catch let error as NonFiniteLoss {
            throw diverged("the loss is \(error.loss)", step: state.step + 1, learningRate: learningRate)
        }
        if let reason = divergence.check(Double(result.statistics.loss)) {
            throw diverged(reason, step: state.step + 1, learningRate: learningRate)
        }
        let seconds = Date().timeIntervalSince(stepStart)
        state.step += 1
        state.trainedSeconds += seconds
        state.trainedImages += config.batchSize
        let record = StepRecord(
            step: state.step, epoch: epoch, learningRate: learningRate, statistics: result.statistics,
            phases: result.phases,
            dataWait: waited, stepSeconds: seconds, images: config.batchSize, imagesPerSecond: state.imagesPerSecond)
        return (record, result.requests)
    }

    /// The stop of a diverged run: what diverged, the learning rate and loss weights that led
    /// there, and the checkpoint to resume from.
    private func diverged(_ reason: String, step: Int, learningRate: Float) -> UserError {
        UserError(
            "training diverged at step \(step): \(reason). Learning rate \(learningRate) (\(config.resolvedOptimizer.rawValue), peak \(config.resolvedLearningRate)); \(type(of: setup.method).name)'s settings: \(config.methodSettingsText). Stopping: \(folder.recoveryAdvice). Lower --lr or the method's loss weights; --divergence-factor 0 trains on past a growing loss"
        )
    }

    /// The epoch's scores; a better validation top-1 than before becomes the state's best.
    private func evaluate(_ evaluator: Evaluator, state: inout TrainingState, epoch: Int, learningRate: Float) throws
        -> EvaluationRecord
    {
        let scores = try evaluator.scores(model, what: "the student at this step")
        let isBest = scores.validation.map { $0.top1 > (state.best?.valTop1 ?? -1) } ?? false
        let record = EvaluationRecord(
            step: state.step, epoch: epoch, learningRate: learningRate, scores: scores,
            isBest: isBest, imagesPerSecond: state.imagesPerSecond)
        if let best = record.bestEpoch { state.best = best }
        return record
    }

    /// The frozen teacher's own scores on this run's splits, printed before training.
    private func evaluateTeacher(_ evaluator: Evaluator) throws -> TeacherRecord? {
        guard let teacher = setup.teacher, config.evaluateTeacher else { return nil }
        let scores = try evaluator.teacherScores(teacher)
        let validation = scores.validation.map { "validation top-1 \(percent($0.top1))%, " } ?? ""
        progress.message(
            "teacher \(teacher.architecture): \(validation)test top-1 \(percent(scores.test.top1))%, top-5 \(percent(scores.test.top5))%"
        )
        return TeacherRecord(
            model: teacher.architecture, parameters: teacher.parameterCount, valTop1: scores.validation?.top1,
            testTop1: scores.test.top1, testTop5: scores.test.top5)
    }

    /// `checkpoints/step-N/` with rank 0's buffers and the generator state of this step.
    private func checkpoint(_ state: inout TrainingState, replicas: ReplicaGroup) throws -> CheckpointRecord {
        state.random = [GlobalRandom.generator.state.0, GlobalRandom.generator.state.1]
        try replicas.synchronizeBuffers()
        try folder.saveCheckpoint(
            modules: setup.modules, description: setup.description, optimizer: try replicas.optimizerCheckpoint(),
            state: state,
            keep: config.keepCheckpoints)
        return CheckpointRecord(step: state.step, path: Checkpoints.folder(in: config.output) + "/step-\(state.step)")
    }

    /// The stop after step `step`, saying where a `--resume` continues from.
    private func stopped(atStep step: Int) -> TrainingStopped {
        let signal = StopSignal.received != 0 ? StopSignal.received : SIGTERM
        return TrainingStopped(
            signal: signal,
            description:
                "stopped by \(StopSignal.name(signal)) after step \(step) of \(setup.totalSteps); the checkpoint of step \(step) is written: --resume continues from \(Checkpoints.folder(in: config.output))/step-\(step)",
            everyRankStopped: setup.layout.teacherRanks == 0)
    }

    /// The bad images of every split that any student rank found (each decodes only its shard),
    /// printed (the first 20) and counted.
    private func badImages(_ replicas: ReplicaGroup) throws -> Int {
        let splits = setup.splits
        let files = [splits.train.files, splits.validation?.files, splits.test.files].compactMap { $0 }
        let bad = try files.flatMap { try badImages($0, replicas: replicas) }
        for (path, reason) in bad.prefix(20) {
            progress.message("skipped a bad image: \(path): \(reason ?? "found by another rank")")
        }
        if bad.count > 20 { progress.message("... and \(bad.count - 20) more bad images") }
        return bad.count
    }

    /// The bad images of a split that any student rank found, with the reason where this rank found it.
    private func badImages(_ files: ImageFiles, replicas: ReplicaGroup) throws -> [(path: String, reason: String?)] {
        let local = Dictionary(files.badImages, uniquingKeysWith: { first, _ in first })
        var found = files.folder.paths.map { local[$0] == nil ? Int32(0) : 1 }
        try replicas.communicator.allreduce(&found, .max, context: "bad images of \(files.folder.root)")
        return zip(files.folder.paths, found).filter { $0.1 != 0 }.map { ($0.0, local[$0.0]) }
    }

    private func announce() {
        let layout = setup.layout, splits = setup.splits
        if let teacher = setup.teacher {
            progress.message(
                "distil \(teacher.architecture) -> \(config.model) with \(type(of: setup.method).name); trainable helpers: \(setup.modules.helperParameterCount) parameters"
            )
        }
        let placement =
            layout.world.size > 1
            ? ", \(layout.studentRanks) student ranks x \(layout.localBatchSize) images"
                + (layout.teacherRanks > 0 ? " + \(layout.teacherRanks) teacher ranks" : "")
            : ""
        if case let .sharded(sharded) = setup.optimizer {
            progress.message(
                "zero1: each rank updates its shard of \(sharded.shards.buckets.count) buckets; rank 0 holds \(sharded.stateCount) of the \(sharded.fullStateCount) floats of optimizer state"
            )
        }
        if let unread = try? config.unreadMethodSettings, !unread.isEmpty {
            progress.message(
                "warning: method \(config.method) does not read \(unread.map { "'\($0)'" }.joined(separator: ", ")); \(unread.count == 1 ? "it has" : "they have") no effect"
            )
        }
        if config.precision == .bfloat16 || config.teacherPrecision == .bfloat16 {
            let who = [
                config.precision == .bfloat16 ? "student" : nil, config.teacherPrecision == .bfloat16 ? "teacher" : nil,
            ]
            .compactMap { $0 }.joined(separator: " and ")
            let warning = BFloat16Arithmetic.hardware ? "" : "warning: bf16 brings no speed on this CPU; "
            progress.message("\(warning)bf16 autocast for the \(who): \(BFloat16Arithmetic.summary)")
        }
        progress.message(
            "train \(config.model) (\(model.parameterCount) parameters) on \(splits.name) \(splits.shape), \(splits.train.count) images, batch \(config.batchSize)\(placement), \(setup.totalSteps) steps (\(setup.stepsPerEpoch) per epoch), \(Threads.count) threads; \(config.optimizerSummary(recipe: setup.recipe))"
        )
    }
}

extension TrainingState {
    /// Training throughput so far (step time only: no evaluation or checkpoints).
    var imagesPerSecond: Double { Double(trainedImages) / max(trainedSeconds, 1e-9) }
}
