import Foundation
import Tensors

/// A batch of normalised images (B, C, H, W) with their labels and dataset indices.
public struct Batch {
    public let images: Tensor
    public let labels: [Int]
    public let indices: [Int]

    public init(images: Tensor, labels: [Int], indices: [Int]) {
        self.images = images
        self.labels = labels
        self.indices = indices
    }
}

/// Prepares batches on a background thread, `prefetch` ahead of the training loop, so decoding
/// and augmentation overlap the step that is running.
public final class BatchLoader {
    private final class Queue: @unchecked Sendable {
        let condition = NSCondition()
        var ready: [Batch] = []
        var failure: Error?
        var finished = false
        var cancelled = false
    }

    private let queue = Queue()

    /// `batches` are the dataset indices of each batch, in order.
    public init(dataset: ImageDataset, mean: [Float], std: [Float], augmentation: Augmentation?, seed: UInt64, epoch: Int,
                batches: [[Int]], prefetch: Int = 2) {
        let queue = self.queue
        let thread = Thread {
            for indices in batches {
                let batch: Batch
                do {
                    batch = try BatchLoader.assemble(dataset, indices: indices, mean: mean, std: std, augmentation: augmentation, seed: seed, epoch: epoch)
                } catch {
                    queue.condition.lock()
                    queue.failure = error
                    queue.finished = true
                    queue.condition.broadcast()
                    queue.condition.unlock()
                    return
                }
                queue.condition.lock()
                while queue.ready.count >= prefetch && !queue.cancelled { queue.condition.wait() }
                if queue.cancelled { queue.condition.unlock(); return }
                queue.ready.append(batch)
                queue.condition.broadcast()
                queue.condition.unlock()
            }
            queue.condition.lock()
            queue.finished = true
            queue.condition.broadcast()
            queue.condition.unlock()
        }
        thread.name = "sfkd-loader"
        thread.start()
    }

    deinit {
        queue.condition.lock()
        queue.cancelled = true
        queue.condition.broadcast()
        queue.condition.unlock()
    }

    /// The next batch, or nil after the last; a file that could not be decoded is thrown here.
    public func next() throws -> Batch? {
        queue.condition.lock()
        defer { queue.condition.unlock() }
        while queue.ready.isEmpty && !queue.finished { queue.condition.wait() }
        if queue.ready.isEmpty {
            if let failure = queue.failure { throw failure }
            return nil
        }
        let batch = queue.ready.removeFirst()
        queue.condition.broadcast()
        return batch
    }

    /// Builds one batch on the calling thread.
    public static func assemble(_ dataset: ImageDataset, indices: [Int], mean: [Float], std: [Float], augmentation: Augmentation?,
                                seed: UInt64, epoch: Int) throws -> Batch {
        let images = Tensor(uninitializedShape: [indices.count] + dataset.shape)
        let size = dataset.imageSize
        var scratch: [UInt8] = []
        for (slot, index) in indices.enumerated() {
            try writeSample(dataset, index: index, mean: mean, std: std, augmentation: augmentation, seed: seed, epoch: epoch,
                            into: images.data + slot * size, scratch: &scratch)
        }
        return Batch(images: images, labels: indices.map { Int(dataset.labels[$0]) }, indices: indices)
    }
}
