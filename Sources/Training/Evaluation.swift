import Data
import Foundation
import Models
import Tensors

public struct EvaluationResult: Equatable, Sendable {
    public var top1: Double
    public var top5: Double
    public var loss: Double
    public var samples: Int
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
    public static func run(_ model: any ImageClassifier, on dataset: ImageDataset, mean: [Float], std: [Float], batchSize: Int) -> EvaluationResult {
        totals(model, on: dataset, mean: mean, std: std, batchSize: batchSize).result
    }

    /// Sums over the test samples `shard` of `shards` takes (samples shard, shard + shards, ...), so
    /// data-parallel ranks can split evaluation and add their sums.
    public static func totals(_ model: any ImageClassifier, on dataset: ImageDataset, mean: [Float], std: [Float], batchSize: Int,
                              shard: Int = 0, shards: Int = 1) -> EvaluationTotals {
        let wasTraining = model.isTraining
        model.eval()
        defer { model.train(wasTraining) }
        let samples = Array(stride(from: shard, to: dataset.count, by: shards))
        let batches = stride(from: 0, to: samples.count, by: batchSize).map { Array(samples[$0..<min(samples.count, $0 + batchSize)]) }
        let loader = BatchLoader(dataset: dataset, mean: mean, std: std, augmentation: nil, seed: 0, epoch: 0, batches: batches)
        var correct1 = 0, correct5 = 0, lossSum = 0.0
        while let batch = loader.next() {
            withNoGrad {
                let logits = model.forward(batch.images).logits
                let classes = logits.shape[1]
                lossSum += Double(crossEntropy(logits, labels: batch.labels).item) * Double(batch.labels.count)
                for (row, label) in batch.labels.enumerated() {
                    let scores = logits.data + row * classes
                    let target = scores[label]
                    // Rank of the true class: how many classes score higher (ties count against it).
                    var higher = 0
                    for c in 0..<classes where c != label && scores[c] >= target { higher += 1 }
                    if higher == 0 { correct1 += 1 }
                    if higher < 5 { correct5 += 1 }
                }
            }
        }
        return EvaluationTotals(correctTop1: Double(correct1), correctTop5: Double(correct5), lossSum: lossSum, samples: Double(samples.count))
    }
}
