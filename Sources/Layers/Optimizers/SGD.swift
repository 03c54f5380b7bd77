import Tensors

/// Stochastic gradient descent with PyTorch's semantics: weight decay added to the gradient,
/// momentum buffer initialised to the first gradient, optional dampening and Nesterov.
public final class SGD: Optimizer {
    public let groups: [ParameterGroup]
    public var learningRate: Float
    public let momentum: Float
    public let dampening: Float
    public let nesterov: Bool
    public private(set) var stepCount = 0
    private var buffers: [[Tensor]]

    public init(
        groups: [ParameterGroup], learningRate: Float, momentum: Float = 0, dampening: Float = 0, nesterov: Bool = false
    ) {
        ensure(!nesterov || (momentum > 0 && dampening == 0), "SGD: Nesterov needs momentum > 0 and no dampening")
        self.groups = groups
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        buffers = groups.map { $0.parameters.map { Tensor(zeros: $0.shape) } }
    }

    public func step() {
        let lr = learningRate
        for (g, group) in groups.enumerated() {
            let decay = group.weightDecay
            for (i, p) in group.parameters.enumerated() {
                guard let grad = p.grad else { continue }
                let w = p.data, dw = grad.data, buffer = buffers[g][i].data
                let first = stepCount == 0
                parallelFor(p.count, grain: 1 << 15) { range in
                    for j in range {
                        var d = dw[j] + decay * w[j]
                        if self.momentum != 0 {
                            buffer[j] = first ? d : self.momentum * buffer[j] + (1 - self.dampening) * d
                            d = self.nesterov ? d + self.momentum * buffer[j] : buffer[j]
                        }
                        w[j] -= lr * d
                    }
                }
            }
        }
        stepCount += 1
    }

    public func stateTensors() -> [(String, Tensor)] {
        guard momentum != 0 else { return [] }
        return zip(groups, buffers).flatMap { group, list in
            zip(group.names, list).map { ("\($0).momentum_buffer", $1) }
        }
    }

    public func restore(stepCount: Int, state: [String: Tensor]) throws {
        try restoreState(stateTensors(), from: state)
        self.stepCount = stepCount
    }
}
