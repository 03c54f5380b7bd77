import Cluster
import Foundation
import Layers
import Tensors

/// The loss statistics of one step, local or over the global batch.
public struct StepStatistics: Codable, Equatable, Sendable {
    /// Mean loss over the images.
    public var loss: Float
    /// Images whose top-1 prediction is right.
    public var correct: Double
    /// The method's loss terms (ce, kd, wavelet0, ...).
    public var terms: [String: Double]
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
    private let optimizer: ReplicaOptimizer

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

    /// The number format of an allreduced gradient on the wire.
    public enum Wire: Sendable {
        case float32
        /// Rounded to bfloat16, summed in float32 per combine (`BF16Compression`).
        case bfloat16
    }

    /// A sharded `optimizer` takes its gradients by reduce-scatter; a whole one by allreduce,
    /// in the `wire` format.
    public init(
        modules: StudentAndHelpers, optimizer: ReplicaOptimizer, communicator: Communicator,
        bucketMegabytes: Double = 8, overlap: Bool = true, syncBatchNorm: Bool = false, wire: Wire = .float32
    ) throws {
        self.communicator = communicator
        self.modules = modules
        self.optimizer = optimizer
        guard communicator.size > 1 else {
            gradientSync = nil
            return
        }
        switch optimizer {
        case let .whole(whole):
            let state = modules.fullState + whole.stateTensors()
            try ReplicaSync.checkSignature(state.map { ($0.0, $0.1.shape) }, communicator: communicator)
            try ReplicaSync.broadcast(
                state.map(\.1), communicator: communicator, context: "initial parameters, buffers and optimizer state")
            var stepCount = [whole.stepCount]
            try communicator.broadcast(&stepCount, root: 0, context: "optimizer step count")
            if communicator.rank != 0 {
                try whole.restore(
                    stepCount: stepCount[0], state: Dictionary(whole.stateTensors(), uniquingKeysWith: { a, _ in a }))
            }
        case .sharded:
            // A shard's state differs per rank: the sharded optimizer hands out its own (attach, below).
            try ReplicaSync.checkSignature(modules.fullState.map { ($0.0, $0.1.shape) }, communicator: communicator)
            try ReplicaSync.broadcast(
                modules.fullState.map(\.1), communicator: communicator, context: "initial parameters and buffers")
        }
        if syncBatchNorm { try Self.installSyncBatchNorm(in: modules, communicator: communicator) }
        let hook: any CommunicationHook
        switch (optimizer, wire) {
        case let (.sharded(sharded), _): hook = sharded.communicationHook
        case (.whole, .float32): hook = AllreduceAverage()
        case (.whole, .bfloat16): hook = try BF16Compression()
        }
        let gradientSync = GradientSync(
            parameters: modules.trainableParameters, communicator: try communicator.duplicate(name: "gradients"),
            bucketBytes: Int(bucketMegabytes * 1_048_576), overlap: overlap, hook: hook)
        self.gradientSync = gradientSync
        if case let .sharded(sharded) = optimizer {
            ensure(
                gradientSync.buckets == sharded.shards.buckets,
                "ReplicaGroup: the sharded optimizer was built for other buckets (bucket_mb)")
            try sharded.attach(
                gradientArena: gradientSync.gradients, communicator: try communicator.duplicate(name: "zero1"))
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
                FileHandle.standardError.write(
                    "sfkd rank \(statistics.worldRanks[statistics.rank]): \(error)\n".data(using: .utf8)!)
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
        if let gradientSync { gradientSync.zeroGradients() } else { optimizer.optimizer.zeroGrad() }
    }

    /// Waits for the averaging of the step's gradients (started during backward).
    public func finishGradients() throws { try gradientSync?.finish() }

    /// Clips the averaged gradient to `clipNorm` (when set) and updates the parameters; under
    /// ZeRO-1 each rank updates its shard, then the parameters are all-gathered.
    public func update(clipNorm: Float?) throws {
        switch optimizer {
        case let .sharded(sharded):
            // Without averaging (benchmarks' local steps) the shard is updated from local gradients, nothing is gathered.
            guard averagesGradients else {
                sharded.step()
                return
            }
            if let clipNorm { try sharded.clipGradientNorm(maxNorm: clipNorm) }
            sharded.step()
            try sharded.gatherParameters()
        case let .whole(whole):
            if let clipNorm { clipGradientNorm(whole.groups.flatMap(\.parameters), maxNorm: clipNorm) }
            whole.step()
        }
    }

    /// The optimizer's state as a checkpoint holds it (unsharded names and shapes), with its
    /// step count; under ZeRO-1 gathered from every rank (call it on every rank), complete on rank 0.
    public func optimizerCheckpoint() throws -> OptimizerCheckpoint {
        switch optimizer {
        case let .whole(whole): return OptimizerCheckpoint(stepCount: whole.stepCount, tensors: whole.stateTensors())
        case let .sharded(sharded):
            return OptimizerCheckpoint(stepCount: sharded.stepCount, tensors: try sharded.gatherState())
        }
    }

    /// Mean loss and terms over the global batch and its correct count, and whether any rank
    /// was asked to stop (SIGUSR1, SIGTERM, SIGINT during the step: any stops them all): one
    /// allreduce of a few numbers, after backward so it adds no wait between forward and backward.
    /// The global batch's statistics, and the requests of any rank (a stop, a checkpoint due).
    public func reduce(_ local: StepStatistics, requests: StepRequests, step: Int) throws -> (
        statistics: StepStatistics, requests: StepRequests
    ) {
        guard size > 1 else { return (local, requests) }
        let names = local.terms.keys.sorted()
        var values =
            [Double(local.loss), local.correct, requests.stop ? 1 : 0, requests.checkpoint ? 1 : 0]
            + names.map { local.terms[$0]! }
        try communicator.allreduce(&values, context: "loss statistics, step \(step + 1)")
        let ranks = Double(size)
        var terms: [String: Double] = [:]
        for (i, name) in names.enumerated() { terms[name] = values[4 + i] / ranks }
        return (
            StepStatistics(loss: Float(values[0] / ranks), correct: values[1], terms: terms),
            StepRequests(stop: values[2] > 0, checkpoint: values[3] > 0)
        )
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
        try ReplicaSync.broadcast(
            modules.namedBuffers().map(\.1), communicator: communicator, context: "BatchNorm running statistics")
    }

    /// Seconds per step the communication thread spent in allreduce, and the part the step
    /// waited for, since the last call (nil on one rank).
    public func takeCommunicationTimes(steps: Int) -> (allreduce: Double, exposed: Double)? {
        guard let gradientSync, size > 1, steps > 0 else { return nil }
        defer { gradientSync.resetTimers() }
        return (gradientSync.communicationSeconds / Double(steps), gradientSync.waitSeconds / Double(steps))
    }
}
