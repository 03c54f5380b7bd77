import Foundation
import Tensors

/// Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's AdamW semantics.
public final class AdamW: Optimizer {
    public let groups: [ParameterGroup]
    public var learningRate: Float
    public let beta1: Float
    public let beta2: Float
    public let epsilon: Float
    public private(set) var stepCount = 0
    private var firstMoments: [[Tensor]]
    private var secondMoments: [[Tensor]]

    public init(
        groups: [ParameterGroup], learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8
    ) {
        self.groups = groups
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        firstMoments = groups.map { $0.parameters.map { Tensor(zeros: $0.shape) } }
        secondMoments = groups.map { $0.parameters.map { Tensor(zeros: $0.shape) } }
    }

    public func step() {
        stepCount += 1
        let lr = learningRate, b1 = beta1, b2 = beta2, eps = epsilon
        let correction1 = 1 - Float(pow(Double(b1), Double(stepCount)))
        let correction2 = 1 - Float(pow(Double(b2), Double(stepCount)))
        let stepSize = lr / correction1
        let root2 = correction2.squareRoot()
        for (g, group) in groups.enumerated() {
            let shrink = 1 - lr * group.weightDecay
            for (i, p) in group.parameters.enumerated() {
                guard let grad = p.grad else { continue }
                let w = p.data, dw = grad.data, m = firstMoments[g][i].data, v = secondMoments[g][i].data
                parallelFor(p.count, grain: 1 << 14) { range in
                    for j in range {
                        w[j] *= shrink
                        m[j] = b1 * m[j] + (1 - b1) * dw[j]
                        v[j] = b2 * v[j] + (1 - b2) * dw[j] * dw[j]
                        w[j] -= stepSize * m[j] / (v[j].squareRoot() / root2 + eps)
                    }
                }
            }
        }
    }

    public func stateTensors() -> [(String, Tensor)] {
        groups.indices.flatMap { g in
            groups[g].names.indices.flatMap { i in
                [
                    ("\(groups[g].names[i]).exp_avg", firstMoments[g][i]),
                    ("\(groups[g].names[i]).exp_avg_sq", secondMoments[g][i]),
                ]
            }
        }
    }

    public func restore(stepCount: Int, state: [String: Tensor]) throws {
        try restoreState(stateTensors(), from: state)
        self.stepCount = stepCount
    }
}
