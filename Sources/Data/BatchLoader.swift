import Foundation
import Tensors

/// A batch of normalised images (B, C, H, W) with their labels and dataset indices; after
/// Mixup or CutMix, also the (B, classes) soft targets.
public struct Batch {
    public let images: Tensor
    public let labels: [Int]
    public let indices: [Int]
    public let softTargets: Tensor?

    public init(images: Tensor, labels: [Int], indices: [Int], softTargets: Tensor? = nil) {
        self.images = images
        self.labels = labels
        self.indices = indices
        self.softTargets = softTargets
    }
}

/// Prepares batches ahead of the training loop on `threads` worker threads, so decoding and
/// augmentation overlap the step that is running. Worker k builds batches k, k + threads, ...;
/// batches are handed out in order, and at most `capacity` are built or waiting at any time,
/// so memory is bounded by the queue, not the dataset.
public final class BatchLoader {
    private final class Queue: @unchecked Sendable {
        let condition = NSCondition()
        var ready: [Int: Batch] = [:]
        var failure: (batch: Int, error: Error)?
        /// Batches handed out so far: batch b may be built once b < taken + capacity.
        var taken = 0
        var cancelled = false
    }

    private let queue = Queue()
    private let count: Int

    /// `batches` are the dataset indices of each batch, in order.
    public init(
        dataset: ImageDataset, mean: [Float], std: [Float], augmentation: Augmentation?, seed: UInt64, epoch: Int,
        batches: [[Int]], threads: Int = 1, capacity: Int? = nil
    ) {
        count = batches.count
        let queue = self.queue
        let workers = max(1, min(threads, max(batches.count, 1)))
        let limit = max(capacity ?? 2 * workers, workers)
        for worker in 0..<workers {
            let thread = Thread {
                for b in stride(from: worker, to: batches.count, by: workers) {
                    queue.condition.lock()
                    while b >= queue.taken + limit && !queue.cancelled { queue.condition.wait() }
                    // After a failure, batches past it are not needed; those before still are.
                    let stop = queue.cancelled || (queue.failure.map { b > $0.batch } ?? false)
                    queue.condition.unlock()
                    if stop { return }
                    let result = Result {
                        try BatchLoader.assemble(
                            dataset, indices: batches[b], mean: mean, std: std, augmentation: augmentation, seed: seed,
                            epoch: epoch)
                    }
                    queue.condition.lock()
                    switch result {
                    case .success(let batch): queue.ready[b] = batch
                    case .failure(let error):
                        if queue.failure == nil || b < queue.failure!.batch { queue.failure = (b, error) }
                    }
                    queue.condition.broadcast()
                    queue.condition.unlock()
                }
            }
            thread.name = "sfkd-loader-\(worker)"
            thread.start()
        }
    }

    deinit {
        queue.condition.lock()
        queue.cancelled = true
        queue.condition.broadcast()
        queue.condition.unlock()
    }

    /// The next batch, or nil after the last; a file that could not be decoded is thrown here,
    /// at the batch that needed it.
    public func next() throws -> Batch? {
        queue.condition.lock()
        defer { queue.condition.unlock() }
        let b = queue.taken
        guard b < count else { return nil }
        while queue.ready[b] == nil {
            if let failure = queue.failure, failure.batch <= b { throw failure.error }
            queue.condition.wait()
        }
        let batch = queue.ready.removeValue(forKey: b)!
        queue.taken += 1
        queue.condition.broadcast()
        return batch
    }

    /// Builds one batch on the calling thread.
    public static func assemble(
        _ dataset: ImageDataset, indices: [Int], mean: [Float], std: [Float], augmentation: Augmentation?,
        seed: UInt64, epoch: Int
    ) throws -> Batch {
        let images = Tensor(uninitializedShape: [indices.count] + dataset.shape)
        let size = dataset.imageSize
        for (slot, index) in indices.enumerated() {
            try writeSample(
                dataset, index: index, mean: mean, std: std, augmentation: augmentation, seed: seed, epoch: epoch,
                into: images.data + slot * size)
        }
        return Batch(images: images, labels: indices.map { Int(dataset.labels[$0]) }, indices: indices)
    }
}
