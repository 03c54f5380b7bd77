import Data
import Tensors
import XCTest

final class SamplingTests: XCTestCase {
    let dataset = ImageDataset(
        name: "tiny", shape: [1, 4, 4], classes: 3, pixels: (0..<(20 * 16)).map { UInt8($0 % 251) },
        labels: (0..<20).map { Int32($0 % 3) })

    func testShardsUnionIsTheSingleProcessBatch() {
        let sampler = ShardedSampler(count: 103, seed: 7)
        let order = sampler.order(epoch: 3)
        XCTAssertEqual(Set(order), Set(0..<103))
        XCTAssertNotEqual(order, sampler.order(epoch: 4))
        XCTAssertEqual(order, ShardedSampler(count: 103, seed: 7).order(epoch: 3))
        XCTAssertEqual(sampler.stepsPerEpoch(globalBatch: 16), 6)
        for step in 0..<6 {
            let single = sampler.indices(order: order, step: step, globalBatch: 16)
            for ranks in [2, 4] {
                let shards = (0..<ranks).map {
                    sampler.indices(order: order, step: step, globalBatch: 16, rank: $0, worldSize: ranks)
                }
                XCTAssertTrue(shards.allSatisfy { $0.count == 16 / ranks })
                XCTAssertEqual(Set(shards.flatMap { $0 }), Set(single))
            }
        }
    }

    func testAugmentationIsAPureFunctionOfSeedEpochAndIndex() throws {
        let augmentation = Augmentation(cropPadding: 1, horizontalFlip: true)
        func sample(_ epoch: Int, _ index: Int) throws -> [Float] {
            try BatchLoader.assemble(
                dataset, indices: [index], mean: [0], std: [1], augmentation: augmentation, seed: 5, epoch: epoch
            ).images.array
        }
        XCTAssertEqual(try sample(2, 7), try sample(2, 7))
        let variants = Set(try (0..<12).map { try sample($0, 7) })
        XCTAssertGreaterThan(variants.count, 3)
        // Every variant is the image shifted by at most one pixel, maybe mirrored, zero-padded.
        let original = (0..<16).map { Float(dataset.pixels[7 * 16 + $0]) / 255 }
        for v in variants {
            var matched = false
            for flip in [false, true] {
                for dy in -1...1 {
                    for dx in -1...1 {
                        var candidate = [Float](repeating: 0, count: 16)
                        for y in 0..<4 {
                            for x in 0..<4 {
                                let sy = y + dy, sx = (flip ? 3 - x : x) + dx
                                if sy >= 0 && sy < 4 && sx >= 0 && sx < 4 {
                                    candidate[y * 4 + x] = original[sy * 4 + sx]
                                }
                            }
                        }
                        if zip(candidate, v).allSatisfy({ Swift.abs($0 - $1) < 1e-6 }) { matched = true }
                    }
                }
            }
            XCTAssertTrue(matched, "augmented sample is not a shifted/flipped copy: \(v)")
        }
    }

    func testNormalisation() throws {
        let batch = try BatchLoader.assemble(
            dataset, indices: [1], mean: [0.5], std: [0.25], augmentation: nil, seed: 0, epoch: 0)
        XCTAssertEqual(batch.images.data[0], (Float(dataset.pixels[16]) / 255 - 0.5) / 0.25, accuracy: 1e-5)
        XCTAssertEqual(batch.labels, [1])
    }

    func testBackgroundLoaderYieldsTheSameBatchesInOrder() throws {
        let batches = (0..<11).map { b in (0..<3).map { (b * 7 + $0 * 5) % dataset.count } }
        let augmentation = Augmentation(cropPadding: 1, horizontalFlip: true)
        // One worker, and more workers than the queue has room for: the same batches, in order.
        for (threads, capacity) in [(1, 2), (3, 3), (4, 8)] {
            let loader = BatchLoader(
                dataset: dataset, mean: [0.1], std: [0.3], augmentation: augmentation,
                seed: 11, epoch: 2, batches: batches, threads: threads, capacity: capacity)
            var received = 0
            while let batch = try loader.next() {
                let expected = try BatchLoader.assemble(
                    dataset, indices: batches[received], mean: [0.1], std: [0.3],
                    augmentation: augmentation, seed: 11, epoch: 2)
                XCTAssertEqual(batch.indices, batches[received], "\(threads) threads")
                XCTAssertEqual(batch.images.array, expected.images.array, "\(threads) threads")
                received += 1
            }
            XCTAssertEqual(received, batches.count, "\(threads) threads")
        }
    }
}
