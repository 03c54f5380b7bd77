import Cluster
import Foundation
import Layers
import Models
import Tensors

/// `sfkd bench step` under mpirun: every rank trains a replica on its own `batchSize` random
/// images (weak scaling) and gradients are averaged through `GradientSync`. Blocks of steps with
/// averaging alternate with blocks of the same steps without it, so the cost of communication
/// is a ratio measured in one run: efficiency = step without averaging / step with averaging.
/// Also reported: seconds per step the communication thread spent in allreduce, and the part
/// the step waited for (not hidden behind backward).
struct DataParallelStepBenchmark {
    let model: String
    let batchSize: Int
    let steps: Int
    let warmup: Int
    let rounds: Int
    let bucketMegabytes: Double
    let overlap: Bool

    func run() throws -> [String: Any] {
        let world = Communicator.world
        let shape = [3, 32, 32]
        var generator = RandomGenerator.derived(seed: 1, UInt64(world.rank))
        let images = Tensor(uninitializedShape: [batchSize] + shape)
        for i in 0..<images.count { images.data[i] = generator.nextNormal() }
        let labels = (0..<batchSize).map { _ in Int(generator.next() % 10) }
        let student = try ModelRegistry.make(model, inputShape: shape, classes: 10, seed: 0)
        student.train()
        let groups = ParameterGroup.decayAndNoDecay(student.namedParameters(), weightDecay: 5e-4, exempt: student.noWeightDecay)
        let optimizer = SGD(groups: groups, learningRate: 0.01, momentum: 0.9)
        let sync = GradientSync(parameters: student.parameters(), communicator: try world.duplicate(name: "gradients"),
                                bucketBytes: Int(bucketMegabytes * 1_048_576), overlap: overlap)

        func step() throws -> Double {
            try world.barrier()
            let start = DispatchTime.now().uptimeNanoseconds
            sync.zeroGradients()
            crossEntropy(student.forward(images).logits, labels: labels).backward()
            try sync.finish()
            optimizer.step()
            return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        }
        var synced: [Double] = [], local: [Double] = []
        var communication = 0.0, exposed = 0.0
        for round in 0..<(rounds + 1) {
            for averaging in [true, false] {
                sync.isActive = averaging
                sync.resetTimers()
                let times = try (0..<(round == 0 ? warmup : steps)).map { _ in try step() }
                guard round > 0 else { continue }
                if averaging {
                    synced += times
                    communication += sync.communicationSeconds
                    exposed += sync.waitSeconds
                } else {
                    local += times
                }
            }
        }
        // The slowest rank sets the pace: medians per rank, then the maximum over ranks.
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        var medians = [median(synced), median(local), communication / Double(synced.count), exposed / Double(synced.count)]
        try world.allreduce(&medians, .max)
        let (syncedStep, localStep, allreduce, waited) = (medians[0], medians[1], medians[2], medians[3])
        return ["model": model, "ranks": world.size, "batch_size_per_rank": batchSize, "threads": Threads.count,
                "overlap": overlap, "bucket_mb": bucketMegabytes, "buckets": sync.buckets.count, "steps": synced.count,
                "images_per_sec": Double(batchSize * world.size) / syncedStep, "median_step_ms": syncedStep * 1e3,
                "local_median_step_ms": localStep * 1e3, "local_images_per_sec_per_rank": Double(batchSize) / localStep,
                "efficiency_vs_local": localStep / syncedStep,
                "allreduce_ms": allreduce * 1e3, "allreduce_exposed_ms": waited * 1e3,
                "peak_rss_mb": peakResidentMegabytes()]
    }
}
