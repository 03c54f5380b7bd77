import Tensors

/// Which samples each rank sees at each step. Every epoch is a permutation seeded by
/// (seed, epoch); step s covers positions [s B, (s + 1) B) of it for a global batch B, and
/// rank r of R takes positions s B + r, s B + r + R, ... (torch's DistributedSampler
/// followed by batching). The union over ranks is the single-process batch, so 1, 2 or 4
/// ranks follow the same trajectory. The incomplete last batch is dropped.
public struct ShardedSampler: Sendable {
    public let count: Int
    public let seed: UInt64
    public let shuffle: Bool

    public init(count: Int, seed: UInt64, shuffle: Bool = true) {
        self.count = count
        self.seed = seed
        self.shuffle = shuffle
    }

    public func stepsPerEpoch(globalBatch: Int) -> Int { count / globalBatch }

    public func order(epoch: Int) -> [Int] {
        var order = Array(0..<count)
        guard shuffle else { return order }
        var generator = RandomGenerator.derived(seed: seed, 0x5A3, UInt64(epoch))
        for i in stride(from: count - 1, to: 0, by: -1) {
            order.swapAt(i, Int(generator.next() % UInt64(i + 1)))
        }
        return order
    }

    /// The samples of `rank` at `step` of an epoch whose order is `order`.
    public func indices(order: [Int], step: Int, globalBatch: Int, rank: Int = 0, worldSize: Int = 1) -> [Int] {
        ensure(
            globalBatch % worldSize == 0,
            "ShardedSampler: global batch \(globalBatch) not divisible by \(worldSize) ranks")
        let start = step * globalBatch
        return stride(from: start + rank, to: start + globalBatch, by: worldSize).map { order[$0] }
    }
}
