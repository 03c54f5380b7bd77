import Cluster
import Layers
import Tensors
import XCTest

final class GradientSyncTests: XCTestCase {
    func model(seed: UInt64) -> Sequential {
        var generator = RandomGenerator(seed: seed)
        return Sequential([
            Linear(inputDimensions: 30, outputDimensions: 400, generator: &generator), Activation.gelu,
            Linear(inputDimensions: 400, outputDimensions: 300, generator: &generator), Activation.gelu,
            Linear(inputDimensions: 300, outputDimensions: 7, generator: &generator),
        ])
    }

    /// ZeRO's shards: every bucket split over the ranks in order, as evenly as it goes (the
    /// first n mod R ranks one float more), the ranks' ranges together covering the arena once.
    func testBucketShardsSplitEveryBucketEvenlyAndCoverTheArenaOnce() {
        let counts = [7, 1, 300, 5, 64, 3]
        let buckets = GradientSync.buckets(parameterCounts: counts, firstBucketBytes: 4 * 10, bucketBytes: 4 * 100)
        XCTAssertEqual(buckets.map(\.index), Array(buckets.indices))
        for ranks in [1, 2, 3, 4, 7] {
            let shards = BucketShards(buckets: buckets, ranks: ranks)
            for (b, bucket) in buckets.enumerated() {
                let n = bucket.end - bucket.start
                XCTAssertEqual(shards.counts[b].reduce(0, +), n)
                XCTAssertLessThanOrEqual(shards.counts[b].max()! - shards.counts[b].min()!, 1)
                XCTAssertEqual(shards.counts[b], shards.counts[b].sorted(by: >), "the larger shares first")
                XCTAssertEqual(shards.displacements[b][0], 0)
            }
            var covered = [Int](repeating: 0, count: counts.reduce(0, +))
            for rank in 0..<ranks { for range in shards.ranges(of: rank) { for i in range { covered[i] += 1 } } }
            XCTAssertEqual(covered, [Int](repeating: 1, count: covered.count), "\(ranks) ranks")
        }
        // Three floats over four ranks: the last rank owns nothing of that bucket.
        let tiny = BucketShards(buckets: GradientSync.buckets(parameterCounts: [3]), ranks: 4)
        XCTAssertEqual(tiny.counts[0], [1, 1, 1, 0])
        XCTAssertEqual(tiny.ranges(of: 3), [])
    }

    func testBucketsCoverTheArenaInReverseParameterOrder() {
        let parameters = model(seed: 1).parameters()
        let sync = GradientSync(
            parameters: parameters, communicator: .world, firstBucketBytes: 4 * 1000, bucketBytes: 4 * 50_000)
        XCTAssertEqual(
            sync.buckets.first?.parameters.first, parameters.count - 1, "the first bucket starts at the last parameter")
        XCTAssertEqual(sync.buckets.flatMap(\.parameters), Array(parameters.indices.reversed()))
        // Contiguous, back to front, covering every float once.
        var end = parameters.reduce(0) { $0 + $1.count }
        for bucket in sync.buckets {
            XCTAssertEqual(bucket.end, end)
            end = bucket.start
        }
        XCTAssertEqual(end, 0)
        XCTAssertLessThanOrEqual(sync.buckets[0].end - sync.buckets[0].start, 1000 + 7 * 300)
    }

    func testOneRankLeavesGradientsAsPlainBackwardComputesThem() throws {
        for overlap in [true, false] {
            let reference = model(seed: 2), synced = model(seed: 2)
            let sync = GradientSync(
                parameters: synced.parameters(), communicator: .world, firstBucketBytes: 4096, bucketBytes: 65536,
                overlap: overlap)
            var generator = RandomGenerator(seed: 3)
            let x = Tensor((0..<(5 * 30)).map { _ in generator.nextUniform() - 0.5 }, shape: [5, 30])
            for _ in 0..<2 {
                reference.zeroGrad()
                synced.zeroGrad()
                crossEntropy(reference(x), labels: [0, 1, 2, 3, 4]).backward()
                crossEntropy(synced(x), labels: [0, 1, 2, 3, 4]).backward()
                try sync.finish()
                for (a, b) in zip(reference.parameters(), synced.parameters()) {
                    XCTAssertEqual(a.grad!.array, b.grad!.array)
                }
            }
            // The gradients live in the arena.
            let first = synced.parameters()[0]
            XCTAssertEqual(sync.gradients.data[0], first.grad!.data[0])
        }
    }

    func testUnusedParametersDoNotBlockFinish() throws {
        let network = model(seed: 4)
        let spare = Tensor(zeros: [10], requiresGrad: true)
        let sync = GradientSync(
            parameters: network.parameters() + [spare], communicator: .world, firstBucketBytes: 64, bucketBytes: 64)
        crossEntropy(network(Tensor(repeating: 0.1, shape: [2, 30])), labels: [1, 2]).backward()
        try sync.finish()
        XCTAssertEqual(spare.grad!.array, [Float](repeating: 0, count: 10))
    }
}
