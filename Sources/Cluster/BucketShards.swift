import Foundation
import Tensors

/// ZeRO's split of every gradient bucket over the ranks: rank r owns the `counts[b][r]` floats
/// of bucket b that start `displacements[b][r]` after the bucket's start; a bucket of n floats
/// gives every rank n / R of them and the first n mod R ranks one more. Buckets stay whole
/// collectives, so sharding keeps the overlap of communication with backward.
public struct BucketShards: Sendable, Equatable {
    public let buckets: [GradientSync.Bucket]
    public let ranks: Int
    public let counts: [[Int]]
    public let displacements: [[Int]]

    public init(buckets: [GradientSync.Bucket], ranks: Int) {
        ensure(ranks >= 1, "BucketShards: \(ranks) ranks")
        self.buckets = buckets
        self.ranks = ranks
        var counts: [[Int]] = [], displacements: [[Int]] = []
        for bucket in buckets {
            let n = bucket.end - bucket.start
            let shares = (0..<ranks).map { n / ranks + ($0 < n % ranks ? 1 : 0) }
            counts.append(shares)
            displacements.append(shares.indices.map { shares[..<$0].reduce(0, +) })
        }
        self.counts = counts
        self.displacements = displacements
    }

    /// The arena floats `rank` owns, bucket by bucket.
    public func ranges(of rank: Int) -> [Range<Int>] {
        buckets.indices.compactMap { b in
            let start = buckets[b].start + displacements[b][rank]
            return counts[b][rank] > 0 ? start..<(start + counts[b][rank]) : nil
        }
    }

    /// Fills every bucket of `arena` from the ranks that own its parts (each rank's own parts
    /// already in place): the all-gather that ends a ZeRO step.
    public func allgather(_ arena: UnsafeMutablePointer<Float>, communicator: Communicator, context: String) throws {
        for (b, bucket) in buckets.enumerated() {
            try communicator.allgather(
                inPlace: arena + bucket.start, counts: counts[b], displacements: displacements[b],
                context: "\(context), bucket \(b + 1) of \(buckets.count)")
        }
    }
}

/// The ZeRO-1 communication hook: reduce-scatter of each bucket, so this rank receives the
/// sum of its own shard only, which it divides by the number of ranks in place. The rest of
/// the bucket keeps this rank's local gradient, which nothing reads: the sharded optimizer
/// updates the owned shard and all-gathers the parameters. The same bytes on the wire as the
/// first half of a ring allreduce.
public final class ReduceScatterAverage: CommunicationHook {
    public let shards: BucketShards
    private var received: [Float]

    public init(shards: BucketShards) {
        self.shards = shards
        received = [Float](repeating: 0, count: shards.counts.map { $0.max() ?? 0 }.max() ?? 0)
    }

    public func reduce(
        _ values: UnsafeMutableBufferPointer<Float>, bucket: GradientSync.Bucket, communicator: Communicator,
        context: String
    ) throws {
        ensure(
            bucket == shards.buckets[bucket.index] && communicator.size == shards.ranks,
            "ReduceScatterAverage: bucket \(bucket.index) or \(communicator.size) ranks differ from the shard layout")
        let rank = communicator.rank
        let count = shards.counts[bucket.index][rank], start = shards.displacements[bucket.index][rank]
        let scale = 1 / Float(communicator.size)
        try received.withUnsafeMutableBufferPointer { received in
            try communicator.reduceScatter(
                UnsafeBufferPointer(values), counts: shards.counts[bucket.index], into: received.baseAddress!,
                context: context)
            for i in 0..<count { values[start + i] = received[i] * scale }
        }
    }
}
