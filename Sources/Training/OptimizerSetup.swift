import Layers
import Tensors

extension TrainingConfig {
    /// The optimizer over the student and its helpers: decay on weights, none on biases, norms
    /// and the student's exempt parameters (position embeddings, class tokens).
    public func makeOptimizer(for modules: StudentAndHelpers) -> any Optimizer {
        let groups = ParameterGroup.decayAndNoDecay(modules.namedParameters(), weightDecay: Float(resolvedWeightDecay), exempt: modules.student.noWeightDecay)
        let lr = Float(resolvedLearningRate)
        switch optimizer {
        case .adamw: return AdamW(groups: groups, learningRate: lr)
        case .sgd: return SGD(groups: groups, learningRate: lr, momentum: Float(momentum), nesterov: nesterov)
        }
    }

    public func makeSchedule(stepsPerEpoch: Int, totalSteps: Int) -> any LearningRateSchedule {
        let lr = Float(resolvedLearningRate)
        let warmup = Int(warmupEpochs * Double(stepsPerEpoch))
        switch schedule {
        case .step:
            return StepDecaySchedule(base: lr, stepSize: max(1, Int(stepSizeEpochs * Double(stepsPerEpoch))), gamma: Float(stepGamma))
        case .constant:
            return WarmupCosineSchedule(base: lr, warmupSteps: warmup, totalSteps: Int.max / 2, minimum: lr)
        case .cosine:
            return WarmupCosineSchedule(base: lr, warmupSteps: warmup, totalSteps: totalSteps, minimum: Float(minimumLearningRate))
        }
    }
}
