import Layers
import Tensors

/// A replica's optimizer: the whole update rule, or under ZeRO-1 (`grad_sync: zero1` on more
/// than one student rank) its shard, which also decides how gradients reach it (reduce-scatter).
public enum ReplicaOptimizer {
    case whole(any Optimizer)
    case sharded(ShardedOptimizer)

    /// The optimizer the step sets the learning rate of.
    public var optimizer: any Optimizer {
        switch self {
        case let .whole(optimizer): return optimizer
        case let .sharded(sharded): return sharded
        }
    }
}

extension TrainingConfig {
    /// The optimizer over the student and its helpers: decay on weights, none on biases, norms
    /// and the student's exempt parameters (position embeddings, class tokens). With
    /// `grad_sync: zero1` on more than one student rank, each rank's share of it (ZeRO-1);
    /// `rank` and `ranks` place this replica among the students.
    public func makeOptimizer(for modules: StudentAndHelpers, rank: Int = 0, ranks: Int = 1) -> ReplicaOptimizer {
        let groups = ParameterGroup.decayAndNoDecay(
            modules.namedParameters(), weightDecay: Float(resolvedWeightDecay), exempt: modules.student.noWeightDecay)
        guard gradientSync == .zero1, ranks > 1 else { return .whole(makeRule(groups)) }
        return .sharded(
            ShardedOptimizer(
                groups: groups, arenaOrder: modules.trainableParameters, rank: rank, ranks: ranks,
                bucketBytes: Int(bucketMegabytes * 1_048_576), makeRule: makeRule))
    }

    /// The configured update rule (AdamW or SGD) over `groups`.
    func makeRule(_ groups: [ParameterGroup]) -> any Optimizer {
        let lr = Float(resolvedLearningRate)
        switch resolvedOptimizer {
        case .adamw: return AdamW(groups: groups, learningRate: lr)
        case .sgd: return SGD(groups: groups, learningRate: lr, momentum: Float(momentum), nesterov: nesterov)
        }
    }

    public func makeSchedule(stepsPerEpoch: Int, totalSteps: Int) -> any LearningRateSchedule {
        let lr = Float(resolvedLearningRate)
        let warmup = Int((warmupEpochs ?? 0) * Double(stepsPerEpoch))
        switch schedule {
        case .step:
            return StepDecaySchedule(
                base: lr, stepSize: max(1, Int(stepSizeEpochs * Double(stepsPerEpoch))), gamma: Float(stepGamma))
        case .constant:
            return WarmupCosineSchedule(base: lr, warmupSteps: warmup, totalSteps: Int.max / 2, minimum: lr)
        case .cosine:
            return WarmupCosineSchedule(
                base: lr, warmupSteps: warmup, totalSteps: totalSteps, minimum: Float(minimumLearningRate))
        }
    }
}
