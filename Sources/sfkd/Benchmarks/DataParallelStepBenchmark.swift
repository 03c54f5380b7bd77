import Cluster
import Data
import Distill
import Foundation
import Layers
import Models
import Tensors
import Training

/// `sfkd bench step` under mpirun: every rank trains a replica on its own `batchSize` random
/// images (weak scaling) through the `TrainingStep` and `ReplicaGroup` users run. Blocks of
/// steps with gradient averaging alternate with blocks of the same steps without it, so the
/// cost of communication is a ratio measured in one run: efficiency = step without averaging /
/// step with averaging. Also reported: seconds per step the communication thread spent in
/// allreduce, and the part the step waited for (not hidden behind backward).
struct DataParallelStepBenchmark {
    /// The run's settings as `sfkd train` takes them (model, grad_sync, bucket_mb, overlap...);
    /// `batch_size` is per rank here, the global batch is R times it.
    var config: TrainingConfig
    let steps: Int
    let warmup: Int
    let rounds: Int

    struct Result: Encodable {
        let model: String
        let ranks: Int
        let gradSync: String
        let batchSizePerRank: Int
        let threads: Int
        let overlap: Bool
        let bucketMegabytes: Double
        let buckets: Int
        let steps: Int
        let imagesPerSecond: Double
        let medianStepMilliseconds: Double
        let localMedianStepMilliseconds: Double
        let localImagesPerSecondPerRank: Double
        let efficiencyVersusLocal: Double
        let allreduceMilliseconds: Double
        let allreduceExposedMilliseconds: Double
        let peakResidentMegabytes: Double

        enum CodingKeys: String, CodingKey {
            case model, ranks, threads, overlap, buckets, steps, gradSync = "grad_sync"
            case batchSizePerRank = "batch_size_per_rank", bucketMegabytes = "bucket_mb", imagesPerSecond =
                "images_per_sec"
            case medianStepMilliseconds = "median_step_ms", localMedianStepMilliseconds = "local_median_step_ms"
            case localImagesPerSecondPerRank = "local_images_per_sec_per_rank", efficiencyVersusLocal =
                "efficiency_vs_local"
            case allreduceMilliseconds = "allreduce_ms", allreduceExposedMilliseconds = "allreduce_exposed_ms",
                peakResidentMegabytes = "peak_rss_mb"
        }
    }

    func run() throws -> Result {
        let world = Communicator.world
        let batchSize = config.batchSize
        var config = self.config
        config.batchSize = batchSize * world.size
        config.steps = 2 * (warmup + rounds * steps)
        config.epochs = nil
        let splits = randomImageSplits(shape: [3, 32, 32], classes: 10, count: config.batchSize)
        let setup = try TrainingSetup(config: config, world: world, splits: splits)
        let replicas = try setup.makeReplicas()
        let step = try setup.makeStep(replicas: replicas)
        setup.modules.train()
        let batch = try setup.batches(rank: replicas.rank).batch(step: 0)

        var synced: [Double] = [], local: [Double] = []
        var communication = 0.0, exposed = 0.0
        var index = 0
        for round in 0..<(rounds + 1) {
            for averaging in [true, false] {
                replicas.averagesGradients = averaging
                _ = replicas.takeCommunicationTimes(steps: 1)
                var times: [Double] = []
                for _ in 0..<(round == 0 ? warmup : steps) {
                    try world.barrier()
                    let start = DispatchTime.now().uptimeNanoseconds
                    _ = try step.run(batch, step: index, learningRate: 0.01)
                    times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
                    index += 1
                }
                guard round > 0 else { continue }
                if averaging {
                    synced += times
                    if let spent = replicas.takeCommunicationTimes(steps: 1) {
                        communication += spent.allreduce
                        exposed += spent.exposed
                    }
                } else {
                    local += times
                }
            }
        }
        // The slowest rank sets the pace: medians per rank, then the maximum over ranks.
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        var medians = [
            median(synced), median(local), communication / Double(synced.count), exposed / Double(synced.count),
        ]
        try world.allreduce(&medians, .max)
        let (syncedStep, localStep, allreduce, waited) = (medians[0], medians[1], medians[2], medians[3])
        return Result(
            model: config.model, ranks: world.size, gradSync: config.gradientSync.rawValue, batchSizePerRank: batchSize,
            threads: Threads.count,
            overlap: config.overlap, bucketMegabytes: config.bucketMegabytes, buckets: replicas.bucketCount,
            steps: synced.count,
            imagesPerSecond: Double(batchSize * world.size) / syncedStep, medianStepMilliseconds: syncedStep * 1e3,
            localMedianStepMilliseconds: localStep * 1e3, localImagesPerSecondPerRank: Double(batchSize) / localStep,
            efficiencyVersusLocal: localStep / syncedStep, allreduceMilliseconds: allreduce * 1e3,
            allreduceExposedMilliseconds: waited * 1e3,
            peakResidentMegabytes: peakResidentMegabytes())
    }
}
