import Cluster
import Foundation
import Layers
import Tensors

/// ZeRO stage 1 (PyTorch's ZeroRedundancyOptimizer, llm.c's ZeRO-1). The gradient buckets are
/// reduce-scattered (`ReduceScatterAverage`), so this rank holds the average gradient of its
/// shard of every bucket; it updates only that shard of the parameters, with optimizer state
/// for that shard alone (1/R of the whole), and the parameters are then all-gathered bucket by
/// bucket. The update rule is the ordinary AdamW or SGD run over views of the shard, so each
/// element sees the arithmetic of the unsharded optimizer. Checkpoints hold the full state
/// under the unsharded names (`gatherState`), so a run resumes on any number of ranks and with
/// any `--grad-sync`. The gradient arena doubles as the buffer of every gather: between steps
/// it holds nothing that is still needed.
public final class ShardedOptimizer: Optimizer {
    /// The full parameter groups (what the unsharded optimizer would hold).
    public let groups: [ParameterGroup]
    public let shards: BucketShards
    public let rank: Int
    /// The update rule over this rank's shard.
    let rule: any Optimizer
    /// The state tensors the rule keeps per parameter (`exp_avg`, `momentum_buffer`, ...).
    let stateSuffixes: [String]

    /// A piece of this rank's shard: `view` shares the storage of one parameter's elements
    /// that sit at arena floats [arenaStart, arenaStart + view.count).
    struct Segment {
        let arenaStart: Int
        let view: Tensor
    }
    let segments: [Segment]
    /// Every trainable parameter in arena order, with its offset and its name in `groups`.
    let parameters: [(tensor: Tensor, offset: Int, name: String?)]
    private var workspace: Tensor?
    private var communicator: Communicator?
    /// Full state restored from a checkpoint on rank 0, until `attach` hands it out.
    private var restored: (stepCount: Int, state: [String: Tensor])?

    /// `arenaOrder` lists the trainable parameters in the order of the gradient arena; `makeRule`
    /// builds the update rule (AdamW or SGD) over parameter groups.
    public init(
        groups: [ParameterGroup], arenaOrder: [Tensor], rank: Int, ranks: Int, firstBucketBytes: Int = 1 << 20,
        bucketBytes: Int,
        makeRule: ([ParameterGroup]) -> any Optimizer
    ) {
        self.groups = groups
        self.rank = rank
        var group = [ObjectIdentifier: (Int, String)]()
        for (g, parameterGroup) in groups.enumerated() {
            for (p, name) in zip(parameterGroup.parameters, parameterGroup.names) {
                group[ObjectIdentifier(p)] = (g, name)
            }
        }
        let offsets = GradientSync.offsets(of: arenaOrder.map(\.count))
        parameters = zip(arenaOrder, offsets).map { ($0, $1, group[ObjectIdentifier($0)]?.1) }
        shards = BucketShards(
            buckets: GradientSync.buckets(
                parameterCounts: arenaOrder.map(\.count), firstBucketBytes: firstBucketBytes, bucketBytes: bucketBytes),
            ranks: ranks)
        var segments: [Segment] = [], members = [[Segment]](repeating: [], count: groups.count)
        for owned in shards.ranges(of: rank) {
            for (p, offset, _) in parameters where offset < owned.upperBound && offset + p.count > owned.lowerBound {
                guard let (g, _) = group[ObjectIdentifier(p)] else { continue }
                let start = max(owned.lowerBound, offset), end = min(owned.upperBound, offset + p.count)
                let segment = Segment(
                    arenaStart: start,
                    view: Tensor(shape: [end - start], storage: p.storage, offset: p.offset + start - offset))
                segments.append(segment)
                members[g].append(segment)
            }
        }
        self.segments = segments
        // The rule names a segment by its index in `segments`, so its state names map back.
        let index = Dictionary(
            uniqueKeysWithValues: segments.enumerated().map { (ObjectIdentifier($0.element.view), $0.offset) })
        rule = makeRule(
            members.enumerated().map { g, list in
                ParameterGroup(
                    parameters: list.map(\.view), names: list.map { String(index[ObjectIdentifier($0.view)]!) },
                    weightDecay: groups[g].weightDecay)
            })
        let probe = makeRule([ParameterGroup(parameters: [Tensor(zeros: [1])], names: ["p"], weightDecay: 0)])
        stateSuffixes = probe.stateTensors().map { String($0.0.dropFirst(2)) }
    }

    /// How gradients reach this optimizer: reduce-scatter of each bucket, so this rank holds
    /// the average of its shard.
    public var communicationHook: any CommunicationHook { ReduceScatterAverage(shards: shards) }

    public var learningRate: Float {
        get { rule.learningRate }
        set { rule.learningRate = newValue }
    }

    public var stepCount: Int { rule.stepCount }

    /// Floats of optimizer state this rank holds (the unsharded optimizer: `fullStateCount`).
    public var stateCount: Int { rule.stateTensors().reduce(0) { $0 + $1.1.count } }
    public var fullStateCount: Int {
        stateSuffixes.count * groups.reduce(0) { $0 + $1.parameters.reduce(0) { $0 + $1.count } }
    }

    /// Takes the gradient arena (the shard's gradients are views into it) and the communicator
    /// of the replicas, then hands every rank its part of the state rank 0 restored, if any.
    public func attach(gradientArena: Tensor, communicator: Communicator) throws {
        ensure(
            communicator.size == shards.ranks && communicator.rank == rank,
            "ShardedOptimizer: built for rank \(rank) of \(shards.ranks), attached to rank \(communicator.rank) of \(communicator.size)"
        )
        workspace = gradientArena
        self.communicator = communicator
        for segment in segments {
            segment.view.attachGradientBuffer(
                Tensor(
                    shape: [segment.view.count], storage: gradientArena.storage,
                    offset: gradientArena.offset + segment.arenaStart))
        }
        var header = [restored == nil ? 0 : 1, restored?.stepCount ?? 0]
        try communicator.broadcast(&header, root: 0, context: "optimizer step count")
        guard header[0] == 1 else { return }
        let arena = gradientArena.data
        let byName = Dictionary(uniqueKeysWithValues: rule.stateTensors())
        for suffix in stateSuffixes {
            if let restored {
                for (p, offset, name) in parameters {
                    guard let name, let full = restored.state["\(name).\(suffix)"] else { continue }
                    (arena + offset).update(from: full.data, count: p.count)
                }
            }
            try communicator.broadcast(
                UnsafeMutableBufferPointer(start: arena, count: gradientArena.count), root: 0,
                context: "optimizer state \(suffix)")
            for (i, segment) in segments.enumerated() {
                byName["\(i).\(suffix)"]!.data.update(from: arena + segment.arenaStart, count: segment.view.count)
            }
        }
        try rule.restore(stepCount: header[1], state: byName)
        restored = nil
    }

    public func step() {
        ensure(workspace != nil, "ShardedOptimizer.step before attach")
        rule.step()
    }

    /// PyTorch's clip_grad_norm_ over the sharded gradient: the squares of every rank's shard,
    /// summed over the ranks. Returns the norm before clipping.
    @discardableResult
    public func clipGradientNorm(maxNorm: Float) throws -> Float {
        guard let communicator else { fatalError("ShardedOptimizer.clipGradientNorm before attach") }
        return try Layers.clipGradientNorm(segments.map(\.view), maxNorm: maxNorm) { local in
            var total = [local]
            try communicator.allreduce(&total, context: "gradient norm")
            return total[0]
        }
    }

    /// Every rank's updated shard to every rank: the all-gather after `step`.
    public func gatherParameters() throws {
        guard let workspace, let communicator else { fatalError("ShardedOptimizer.gatherParameters before attach") }
        let arena = workspace.data
        for segment in segments {
            (arena + segment.arenaStart).update(from: segment.view.data, count: segment.view.count)
        }
        try shards.allgather(arena, communicator: communicator, context: "parameters after the sharded update")
        for (p, offset, _) in parameters { p.data.update(from: arena + offset, count: p.count) }
    }

    /// The whole optimizer state under the unsharded names, gathered from every rank (a
    /// collective: every rank calls it). Returns it on rank 0, nothing elsewhere.
    public func gatherState() throws -> [(String, Tensor)] {
        guard let workspace, let communicator else { return rule.stateTensors() }
        let arena = workspace.data
        let local = Dictionary(uniqueKeysWithValues: rule.stateTensors())
        var full: [String: Tensor] = [:]
        for suffix in stateSuffixes {
            for (i, segment) in segments.enumerated() {
                (arena + segment.arenaStart).update(from: local["\(i).\(suffix)"]!.data, count: segment.view.count)
            }
            try shards.allgather(
                arena, communicator: communicator, context: "optimizer state \(suffix) for a checkpoint")
            guard rank == 0 else { continue }
            for (p, offset, name) in parameters {
                guard let name else { continue }
                let tensor = Tensor(uninitializedShape: p.shape)
                tensor.data.update(from: arena + offset, count: p.count)
                full["\(name).\(suffix)"] = tensor
            }
        }
        guard rank == 0 else { return [] }
        // The unsharded optimizer's order: by group and parameter, then state.
        return groups.flatMap(\.names).flatMap { name in stateSuffixes.map { ("\(name).\($0)", full["\(name).\($0)"]!) }
        }
    }

    /// This rank's shard of the state, named by segment (`gatherState` gives the full state).
    public func stateTensors() -> [(String, Tensor)] { rule.stateTensors() }

    /// Takes the full, unsharded state of a checkpoint (on rank 0); `attach` hands every rank its shard.
    public func restore(stepCount: Int, state: [String: Tensor]) throws {
        for group in groups {
            for (p, name) in zip(group.parameters, group.names) {
                for suffix in stateSuffixes {
                    guard let saved = state["\(name).\(suffix)"] else {
                        throw OptimizerStateError(description: "optimizer state: missing tensor '\(name).\(suffix)'")
                    }
                    guard saved.shape == p.shape else {
                        throw OptimizerStateError(
                            description:
                                "optimizer state: '\(name).\(suffix)' has shape \(saved.shape), expected \(p.shape)")
                    }
                }
            }
        }
        restored = (stepCount, state)
    }
}
