import Cluster
import Foundation
import Layers
import Tensors

/// The loss statistics of one step, local or over the global batch.
public struct StepStatistics: Equatable, Sendable {
    /// Mean loss over the images.
    public var loss: Float
    /// Images whose top-1 prediction is right.
    public var correct: Double
    /// The method's loss terms (ce, kd, wavelet0, ...).
    public var terms: [String: Double]
    /// Ranks that received SIGINT or SIGTERM during the step (any stops them all).
    public var stopRequests: Double = 0
}

/// The student replicas of a data-parallel job, PyTorch DDP's counterpart. At start-up it
/// checks that every rank holds the same model as rank 0 and copies rank 0's parameters,
/// buffers and optimizer state to all; during training it averages gradients in buckets while
/// backward runs (`GradientSync`), reduces BatchNorm statistics with `--sync-bn`, and reduces
/// step statistics and evaluation sums. On one rank every call is a no-op.
public final class ReplicaGroup {
    public let communicator: Communicator
    let gradientSync: GradientSync?
    private let modules: StudentAndHelpers
    private let optimizer: any Optimizer

    public var size: Int { communicator.size }
    /// Gradient buckets (0 on one rank).
    public var bucketCount: Int { gradientSync?.buckets.count ?? 0 }
    public var rank: Int { communicator.rank }

    /// How gradient buckets are averaged (`--grad-sync`).
    public enum SyncMethod: String, Sendable, CaseIterable {
        /// float32 allreduce, then divide (the default).
        case allreduce
        /// bfloat16 on the wire (`BF16Compression`), float32 sums.
        case bf16
        /// ZeRO-1: reduce-scatter, a sharded update, all-gather (`ShardedOptimizer`).
        case zero1
    }

    public init(modules: StudentAndHelpers, optimizer: any Optimizer, communicator: Communicator,
                bucketMegabytes: Double = 8, overlap: Bool = true, syncBatchNorm: Bool = false, sync: SyncMethod = .allreduce) throws {
        self.communicator = communicator
        self.modules = modules
        self.optimizer = optimizer
        guard communicator.size > 1 else { gradientSync = nil; return }
        let sharded = optimizer as? ShardedOptimizer
        ensure((sync == .zero1) == (sharded != nil), "ReplicaGroup: --grad-sync \(sync.rawValue) with \(type(of: optimizer)) (make the optimizer with TrainingConfig.makeOptimizer)")
        // A sharded optimizer's state differs per rank: it hands out its own (attach, below).
        let state = modules.fullState + (sharded == nil ? optimizer.stateTensors() : [])
        try ReplicaSync.checkSignature(state.map { ($0.0, $0.1.shape) }, communicator: communicator)
        try ReplicaSync.broadcast(state.map(\.1), communicator: communicator, context: "initial parameters, buffers and optimizer state")
        if sharded == nil {
            var stepCount = [optimizer.stepCount]
            try communicator.broadcast(&stepCount, root: 0, context: "optimizer step count")
            if communicator.rank != 0 {
                try optimizer.restore(stepCount: stepCount[0], state: Dictionary(optimizer.stateTensors(), uniquingKeysWith: { a, _ in a }))
            }
        }
        if syncBatchNorm { try Self.installSyncBatchNorm(in: modules, communicator: communicator) }
        let hook: any CommunicationHook
        switch sync {
        case .allreduce: hook = AllreduceAverage()
        case .bf16: hook = try BF16Compression()
        case .zero1: hook = ReduceScatterAverage(shards: sharded!.shards)
        }
        let gradientSync = GradientSync(parameters: modules.trainableParameters, communicator: try communicator.duplicate(name: "gradients"),
                                        bucketBytes: Int(bucketMegabytes * 1_048_576), overlap: overlap, hook: hook)
        self.gradientSync = gradientSync
        if let sharded {
            ensure(gradientSync.buckets == sharded.shards.buckets, "ReplicaGroup: the sharded optimizer was built for other buckets (bucket_mb)")
            try sharded.attach(gradientArena: gradientSync.gradients, communicator: try communicator.duplicate(name: "zero1"))
        }
    }

    /// BatchNorm layers of the student and helpers reduce their batch statistics over all replicas.
    private static func installSyncBatchNorm(in modules: StudentAndHelpers, communicator: Communicator) throws {
        let statistics = try communicator.duplicate(name: "sync-bn")
        let reducer: StatisticsReducer = { buffer in
            do {
                try statistics.allreduce(buffer, context: "sync-BN statistics")
            } catch {
                // Inside a forward pass nothing can be thrown: end the job with the reason.
                FileHandle.standardError.write("sfkd rank \(statistics.worldRanks[statistics.rank]): \(error)\n".data(using: .utf8)!)
                statistics.abort(code: 1)
            }
        }
        modules.forEachModule { module in (module as? BatchNorm2d)?.statisticsReducer = reducer }
    }

    /// Whether backward averages gradients (benchmarks time the same replicas without it).
    /// Change it only between steps, on every rank alike.
    public var averagesGradients: Bool {
        get { gradientSync?.isActive ?? false }
        set { gradientSync?.isActive = newValue }
    }

    public func zeroGradients() {
        if let gradientSync { gradientSync.zeroGradients() } else { optimizer.zeroGrad() }
    }

    /// Waits for the averaging of the step's gradients (started during backward).
    public func finishGradients() throws { try gradientSync?.finish() }

    /// Clips the averaged gradient to `clipNorm` (when set) and updates the parameters; under
    /// ZeRO-1 each rank updates its shard, then the parameters are all-gathered.
    public func update(clipNorm: Float?) throws {
        if let sharded = optimizer as? ShardedOptimizer, size > 1 {
            // Without averaging (benchmarks' local steps) the shard is updated from local gradients, nothing is gathered.
            guard averagesGradients else { sharded.step(); return }
            if let clipNorm { try sharded.clipGradientNorm(maxNorm: clipNorm) }
            sharded.step()
            try sharded.gatherParameters()
        } else {
            if let clipNorm { clipGradientNorm(optimizer.groups.flatMap(\.parameters), maxNorm: clipNorm) }
            optimizer.step()
        }
    }

    /// The optimizer's state as a checkpoint holds it (unsharded names and shapes), with its
    /// step count; under ZeRO-1 gathered from every rank (call it on every rank), complete on rank 0.
    public func optimizerCheckpoint() throws -> OptimizerCheckpoint {
        let tensors = try (optimizer as? ShardedOptimizer)?.gatherState() ?? optimizer.stateTensors()
        return OptimizerCheckpoint(stepCount: optimizer.stepCount, tensors: tensors)
    }

    /// Mean loss and terms over the global batch and its correct count: one allreduce of a few
    /// numbers, after backward so it adds no wait between forward and backward.
    public func reduce(_ local: StepStatistics, step: Int) throws -> StepStatistics {
        guard size > 1 else { return local }
        let names = local.terms.keys.sorted()
        var values = [Double(local.loss), local.correct, local.stopRequests] + names.map { local.terms[$0]! }
        try communicator.allreduce(&values, context: "loss statistics, step \(step + 1)")
        let ranks = Double(size)
        var terms: [String: Double] = [:]
        for (i, name) in names.enumerated() { terms[name] = values[3 + i] / ranks }
        return StepStatistics(loss: Float(values[0] / ranks), correct: values[1], terms: terms, stopRequests: values[2])
    }

    /// Evaluation sums of every replica's shard, added.
    public func reduce(_ totals: EvaluationTotals) throws -> EvaluationTotals {
        guard size > 1 else { return totals }
        var values = [totals.correctTop1, totals.correctTop5, totals.lossSum, totals.samples]
        try communicator.allreduce(&values, context: "evaluation totals")
        return EvaluationTotals(correctTop1: values[0], correctTop5: values[1], lossSum: values[2], samples: values[3])
    }

    /// BatchNorm running statistics from rank 0 (without sync-BN each replica's drift apart, as
    /// in DDP, which broadcasts them too); evaluation and checkpoints then match on every rank.
    public func synchronizeBuffers() throws {
        guard size > 1 else { return }
        try ReplicaSync.broadcast(modules.namedBuffers().map(\.1), communicator: communicator, context: "BatchNorm running statistics")
    }

    /// Seconds per step the communication thread spent in allreduce, and the part the step
    /// waited for, since the last call (nil on one rank).
    public func takeCommunicationTimes(steps: Int) -> (allreduce: Double, exposed: Double)? {
        guard let gradientSync, size > 1, steps > 0 else { return nil }
        defer { gradientSync.resetTimers() }
        return (gradientSync.communicationSeconds / Double(steps), gradientSync.waitSeconds / Double(steps))
    }
}
