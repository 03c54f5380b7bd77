import Foundation

/// One optimizer step as the training loop saw it (global-batch statistics, this rank's times).
public struct StepRecord: Codable, Sendable {
    /// Steps done, this one included.
    public var step: Int
    public var epoch: Int
    public var learningRate: Float
    public var statistics: StepStatistics
    public var phases: StepPhases
    /// Seconds the loop waited for the batch, and the step's wall time after it.
    public var dataWait: Double
    public var stepSeconds: Double
    public var images: Int
    /// The run's throughput so far (step time only).
    public var imagesPerSecond: Double
}

/// An epoch's evaluation: the scores, and whether they are the best on validation so far.
public struct EvaluationRecord: Codable, Sendable {
    public var step: Int
    public var epoch: Int
    public var learningRate: Float
    public var scores: Scores
    public var isBest: Bool
    public var imagesPerSecond: Double

    /// The best epoch these scores make, when they are the best on validation.
    var bestEpoch: BestEpoch? {
        guard isBest, let validation = scores.validation else { return nil }
        return BestEpoch(
            epoch: epoch, step: step, valTop1: validation.top1, valTop5: validation.top5, valLoss: validation.loss,
            testTop1: scores.test.top1, testTop5: scores.test.top5, testLoss: scores.test.loss)
    }
}

/// A complete checkpoint written to `path` after step `step`.
public struct CheckpointRecord: Codable, Sendable {
    public var step: Int
    public var path: String
}

/// Receives what the training loop emits, in order, on every student rank (rank 0 alone
/// writes); each sink does one job.
protocol TrainingSink: AnyObject {
    func record(_ step: StepRecord) throws
    func record(_ evaluation: EvaluationRecord) throws
    func record(_ checkpoint: CheckpointRecord) throws
}

extension TrainingSink {
    func record(_ step: StepRecord) throws {}
    func record(_ evaluation: EvaluationRecord) throws {}
    func record(_ checkpoint: CheckpointRecord) throws {}
}

/// `metrics.jsonl`, the event file and `summary.csv`: a `train` line of window means every
/// `log_every` steps (and at the last), an `eval` line per evaluation with the epoch's means.
final class MetricsSink: TrainingSink {
    private let folder: RunFolder
    private let replicas: ReplicaGroup
    private let logEvery: Int
    private let totalSteps: Int
    private var window = MetricsWindow(), epochWindow = MetricsWindow()

    init(folder: RunFolder, replicas: ReplicaGroup, logEvery: Int, totalSteps: Int) {
        self.folder = folder
        self.replicas = replicas
        self.logEvery = logEvery
        self.totalSteps = totalSteps
    }

    func record(_ step: StepRecord) throws {
        window.add(step)
        epochWindow.add(step)
        guard step.step % logEvery == 0 || step.step == totalSteps else { return }
        try folder.log(
            window.record(
                step: step.step, epoch: step.epoch, learningRate: step.learningRate,
                communication: replicas.takeCommunicationTimes(steps: window.stepCount)))
    }

    func record(_ evaluation: EvaluationRecord) throws {
        let training = epochWindow.record(
            step: evaluation.step, epoch: evaluation.epoch, learningRate: evaluation.learningRate, communication: nil)
        var record = MetricsRecord(
            kind: .eval, step: evaluation.step, epoch: evaluation.epoch, values: ["lr": training["lr"] ?? 0])
        for (key, value) in training.values where key == "loss" || key == "top1" || key.hasPrefix("loss_") {
            record["train_\(key)"] = value
        }
        let test = evaluation.scores.test
        (record["test_top1"], record["test_top5"], record["test_loss"]) = (test.top1, test.top5, test.loss)
        if let validation = evaluation.scores.validation {
            (record["val_top1"], record["val_top5"], record["val_loss"]) = (
                validation.top1, validation.top5, validation.loss
            )
        }
        try folder.log(record)
    }
}

/// `best.safetensors`: the student of each new best validation epoch.
final class BestModelKeeper: TrainingSink {
    private let folder: RunFolder
    private let setup: TrainingSetup

    init(folder: RunFolder, setup: TrainingSetup) {
        self.folder = folder
        self.setup = setup
    }

    func record(_ evaluation: EvaluationRecord) throws {
        // The loop synchronised the buffers before evaluating: the student is rank 0's.
        guard evaluation.isBest else { return }
        try folder.saveBest(student: setup.student, description: setup.description, epoch: evaluation.epoch)
    }
}

/// The progress line after every step, the evaluation line per epoch, and the one-time
/// warning when the loader cannot keep up (rank 0 prints).
final class ProgressSink: TrainingSink {
    private let progress: ProgressReporter
    private let totalSteps: Int
    private let stepsPerEpoch: Int
    private let batchSize: Int
    private let loaderThreads: Int
    private let logEvery: Int
    private var window = MetricsWindow()
    private var dataWait = DataWaitMonitor()

    init(progress: ProgressReporter, config: TrainingConfig, totalSteps: Int, stepsPerEpoch: Int) {
        self.progress = progress
        self.totalSteps = totalSteps
        self.stepsPerEpoch = stepsPerEpoch
        batchSize = config.batchSize
        loaderThreads = config.loaderThreads
        logEvery = config.logEverySteps
    }

    func record(_ step: StepRecord) throws {
        window.add(step)
        dataWait.add(step.dataWait, step: step.dataWait + step.stepSeconds)
        if let warning = dataWait.warning(loaderThreads: loaderThreads) { progress.message(warning) }
        let remaining = Double((totalSteps - step.step) * batchSize) / step.imagesPerSecond
        let epochs = (totalSteps + stepsPerEpoch - 1) / stepsPerEpoch
        progress.update(
            "epoch \(step.epoch + 1)/\(epochs) step \(step.step)/\(totalSteps) loss \(String(format: "%.4f", window.meanLoss)) acc \(String(format: "%.1f", 100 * window.accuracy))% lr \(String(format: "%.4g", step.learningRate)) \(Int(step.imagesPerSecond)) img/s data \(Int((100 * window.dataWaitFraction).rounded()))% ETA \(ProgressReporter.duration(remaining))"
        )
        // The same window as the metrics lines.
        if step.step % logEvery == 0 || step.step == totalSteps { window = MetricsWindow() }
    }

    func record(_ evaluation: EvaluationRecord) throws {
        let test = evaluation.scores.test
        var line =
            "test top-1 \(percent(test.top1))%, top-5 \(percent(test.top5))%, loss \(String(format: "%.4f", test.loss))"
        if let validation = evaluation.scores.validation {
            line =
                "validation top-1 \(percent(validation.top1))%, " + line + (evaluation.isBest ? " (best so far)" : "")
        }
        progress.message(
            "epoch \(evaluation.epoch + 1) step \(evaluation.step): \(line); \(Int(evaluation.imagesPerSecond)) img/s")
    }
}

func percent(_ fraction: Double) -> String { String(format: "%.2f", 100 * fraction) }
