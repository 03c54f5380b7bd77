import Data
import Foundation
import Models
import Settings
import Tensors

public struct EvaluationResult: Codable, Equatable, Sendable {
    public var top1: Double
    public var top5: Double
    public var loss: Double
    public var samples: Int

    /// A NaN or infinite test loss means the model computes NaN or infinities: an error, not a figure.
    func checkFinite(what: String, dataset: String) throws {
        guard loss.isFinite else {
            throw UserError(
                "\(what) gives a non-finite test loss (\(loss)) on '\(dataset)': its weights or inputs produce NaN or infinite logits"
            )
        }
    }
}

/// Sums over evaluated samples, which data-parallel ranks add up before taking the means.
public struct EvaluationTotals: Equatable, Sendable {
    public var correctTop1: Double
    public var correctTop5: Double
    public var lossSum: Double
    public var samples: Double

    public var result: EvaluationResult {
        let n = max(1, samples)
        return EvaluationResult(top1: correctTop1 / n, top5: correctTop5 / n, loss: lossSum / n, samples: Int(samples))
    }
}

public enum Evaluation {
    /// Top-1, top-5 and mean cross-entropy (no smoothing) over `dataset`, in eval mode without gradients.
    /// Refuses an empty split and a non-finite loss (a broken model), naming `what` (the checkpoint).
    public static func run(
        _ model: any ImageClassifier, on dataset: ImageDataset, mean: [Float], std: [Float], batchSize: Int,
        what: String = "the model", precision: Precision = .float32
    ) throws -> EvaluationResult {
        guard dataset.count > 0 else {
            throw UserError("the test split of '\(dataset.name)' is empty: nothing to evaluate \(what) on")
        }
        let result = try totals(model, on: dataset, mean: mean, std: std, batchSize: batchSize, precision: precision)
            .result
        try result.checkFinite(what: what, dataset: dataset.name)
        return result
    }

    /// Sums over the test samples `shard` of `shards` takes (samples shard, shard + shards, ...), so
    /// data-parallel ranks can split evaluation and add their sums.
    public static func totals(
        _ model: any ImageClassifier, on dataset: ImageDataset, mean: [Float], std: [Float], batchSize: Int,
        shard: Int = 0, shards: Int = 1, loaderThreads: Int = 2, precision: Precision = .float32
    ) throws -> EvaluationTotals {
        let samples = Array(stride(from: shard, to: dataset.count, by: shards))
        var correct1 = 0, correct5 = 0, lossSum = 0.0
        try forEachBatch(
            model, on: dataset, samples: samples, mean: mean, std: std, batchSize: batchSize,
            loaderThreads: loaderThreads, precision: precision
        ) { logits, labels in
            let classes = logits.shape[1]
            lossSum += Double(crossEntropy(logits, labels: labels).item) * Double(labels.count)
            for (row, label) in labels.enumerated() {
                let scores = logits.data + row * classes
                let target = scores[label]
                // Rank of the true class: how many classes score higher (ties count against it).
                // A non-finite score anywhere in the row never counts as a hit.
                var higher = 0, finite = target.isFinite
                for c in 0..<classes where c != label {
                    if !scores[c].isFinite { finite = false }
                    if scores[c] >= target { higher += 1 }
                }
                if finite && higher == 0 { correct1 += 1 }
                if finite && higher < 5 { correct5 += 1 }
            }
        }
        return EvaluationTotals(
            correctTop1: Double(correct1), correctTop5: Double(correct5), lossSum: lossSum,
            samples: Double(samples.count))
    }

    /// The top-1 class of every image of `dataset` (the first of equal scores).
    public static func predictions(
        _ model: any ImageClassifier, on dataset: ImageDataset, mean: [Float], std: [Float], batchSize: Int,
        precision: Precision
    ) throws -> [Int] {
        var predicted: [Int] = []
        try forEachBatch(
            model, on: dataset, samples: Array(0..<dataset.count), mean: mean, std: std, batchSize: batchSize,
            loaderThreads: 2, precision: precision
        ) { logits, labels in
            let classes = logits.shape[1]
            for row in labels.indices {
                let scores = logits.data + row * classes
                var best = 0
                for c in 1..<classes where scores[c] > scores[best] { best = c }
                predicted.append(best)
            }
        }
        return predicted
    }

    /// The model's logits on `samples` of `dataset`, batch by batch, in eval mode without
    /// gradients, at `precision`.
    private static func forEachBatch(
        _ model: any ImageClassifier, on dataset: ImageDataset, samples: [Int], mean: [Float], std: [Float],
        batchSize: Int, loaderThreads: Int, precision: Precision, _ body: (Tensor, [Int]) -> Void
    ) throws {
        let wasTraining = model.isTraining
        model.eval()
        defer { model.train(wasTraining) }
        let batches = stride(from: 0, to: samples.count, by: batchSize).map {
            Array(samples[$0..<min(samples.count, $0 + batchSize)])
        }
        let loader = BatchLoader(
            dataset: dataset, mean: mean, std: std, augmentation: nil, seed: 0, epoch: 0, batches: batches,
            threads: loaderThreads)
        while let batch = try loader.next() {
            withNoGrad { body(Autocast.run(precision) { model.forward(batch.images).logits }, batch.labels) }
        }
    }
}

/// Scores on the validation split (when there is one) and on test.
public struct Scores: Codable, Sendable {
    public var validation: EvaluationResult?
    public var test: EvaluationResult
}

/// A run's evaluation: each student rank scores every R-th sample of a split and the replicas
/// add their sums. The caller synchronises BatchNorm buffers first, so every rank scores rank
/// 0's model.
public struct Evaluator {
    let splits: DatasetSplits
    let batchSize: Int
    let loaderThreads: Int
    let replicas: ReplicaGroup
    /// The arithmetic each model is scored at: the one it trains or teaches at, as timm's
    /// validation runs under the training's autocast.
    var studentPrecision = Precision.float32
    var teacherPrecision = Precision.float32

    /// The student's scores on validation and test; `what` names it in errors.
    public func scores(_ classifier: any ImageClassifier, what: String) throws -> Scores {
        try scores(classifier, what: what, precision: studentPrecision)
    }

    /// The frozen teacher's scores.
    public func teacherScores(_ teacher: any ImageClassifier) throws -> Scores {
        try scores(teacher, what: "the teacher", precision: teacherPrecision)
    }

    private func scores(_ classifier: any ImageClassifier, what: String, precision: Precision) throws -> Scores {
        let validation = try splits.validation.map {
            try evaluate(classifier, on: $0, split: "validation", what: what, precision: precision)
        }
        return Scores(
            validation: validation,
            test: try evaluate(classifier, on: splits.test, split: "test", what: what, precision: precision))
    }

    private func evaluate(
        _ classifier: any ImageClassifier, on dataset: ImageDataset, split: String, what: String, precision: Precision
    ) throws -> EvaluationResult {
        guard dataset.count > 0 else {
            throw UserError("the \(split) split of '\(splits.name)' is empty: nothing to evaluate on")
        }
        let totals = try Evaluation.totals(
            classifier, on: dataset, mean: splits.mean, std: splits.std, batchSize: batchSize,
            shard: replicas.rank, shards: replicas.size, loaderThreads: loaderThreads, precision: precision)
        let result = try replicas.reduce(totals).result
        try result.checkFinite(what: what, dataset: splits.name)
        return result
    }
}
