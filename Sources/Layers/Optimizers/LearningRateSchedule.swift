import Foundation
import Tensors

/// The learning rate as a function of the step (0-based).
public protocol LearningRateSchedule {
    func learningRate(atStep step: Int) -> Float
}

/// Linear warm-up from `warmupStartFactor * base` to `base` over `warmupSteps`, then cosine
/// decay to `minimum` at `totalSteps` (timm's cosine scheduler with warm-up, per step).
public struct WarmupCosineSchedule: LearningRateSchedule {
    public var base: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var minimum: Float
    public var warmupStartFactor: Float

    public init(base: Float, warmupSteps: Int, totalSteps: Int, minimum: Float = 0, warmupStartFactor: Float = 0.01) {
        self.base = base
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.minimum = minimum
        self.warmupStartFactor = warmupStartFactor
    }

    public func learningRate(atStep step: Int) -> Float {
        if step < warmupSteps {
            let t = Float(step) / Float(max(1, warmupSteps))
            return base * (warmupStartFactor + (1 - warmupStartFactor) * t)
        }
        let decaySteps = max(1, totalSteps - warmupSteps)
        let t = min(1, Float(step - warmupSteps) / Float(decaySteps))
        return minimum + (base - minimum) * 0.5 * (1 + Float(cos(Double.pi * Double(t))))
    }
}

/// Multiplies the rate by `gamma` every `stepSize` steps (PyTorch's StepLR).
public struct StepDecaySchedule: LearningRateSchedule {
    public var base: Float
    public var stepSize: Int
    public var gamma: Float

    public init(base: Float, stepSize: Int, gamma: Float = 0.1) {
        ensure(stepSize >= 1, "StepDecaySchedule: step size must be at least 1")
        self.base = base
        self.stepSize = stepSize
        self.gamma = gamma
    }

    public func learningRate(atStep step: Int) -> Float {
        base * Float(pow(Double(gamma), Double(step / stepSize)))
    }
}
