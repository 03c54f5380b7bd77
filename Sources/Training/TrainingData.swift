import Data
import Foundation
import Settings
import Tensors

/// The batches of a run: which samples each student rank trains on at each step (a sharded
/// permutation per epoch), prepared in the background. A teacher rank asks for its students'
/// batches the same way, so no image crosses the wire.
struct TrainingData {
    let splits: DatasetSplits
    let augmentation: Augmentation
    let seed: UInt64
    let globalBatch: Int
    let studentRanks: Int
    let stepsPerEpoch: Int
    let totalSteps: Int
    let loaderThreads: Int
    /// Mixup / CutMix of each step's batch.
    let mixup: Mixup

    /// The batches `rank` of the student ranks trains on in `epoch`, from `fromStep` on.
    func loader(epoch: Int, fromStep step: Int, rank: Int) -> BatchLoader {
        let sampler = ShardedSampler(count: splits.train.count, seed: seed)
        let order = sampler.order(epoch: epoch)
        let firstStep = step % stepsPerEpoch
        let lastStep = min(stepsPerEpoch, firstStep + (totalSteps - step))
        let batches = (firstStep..<lastStep).map {
            sampler.indices(order: order, step: $0, globalBatch: globalBatch, rank: rank, worldSize: studentRanks)
        }
        return BatchLoader(
            dataset: splits.train, mean: splits.mean, std: splits.std, augmentation: augmentation,
            seed: seed, epoch: epoch, batches: batches, threads: loaderThreads)
    }
}

/// A student rank's batches step after step, across epochs.
public final class TrainingBatches {
    private let data: TrainingData
    private let rank: Int
    private var loader: BatchLoader?
    private var epoch = -1

    init(_ data: TrainingData, rank: Int) {
        self.data = data
        self.rank = rank
    }

    /// The batch of `step` (steps are asked for in order).
    public func batch(step: Int) throws -> Batch {
        let stepEpoch = step / data.stepsPerEpoch
        if stepEpoch != epoch {
            loader = nil
            loader = data.loader(epoch: stepEpoch, fromStep: step, rank: rank)
            epoch = stepEpoch
        }
        guard let batch = try loader?.next() else {
            throw UserError("internal: the loader of rank \(rank) ran out of batches at step \(step)")
        }
        guard data.mixup.isActive else { return batch }
        return data.mixup.apply(to: batch, classes: data.splits.classes, seed: data.seed, step: step)
    }
}
