import Tensors

/// Batch norm over NCHW channels with running statistics (PyTorch's defaults: momentum 0.1, eps 1e-5).
public final class BatchNorm2d: Layer {
    public let weight: Tensor
    public let bias: Tensor
    public let runningMean: Tensor
    public let runningVariance: Tensor
    /// Batches seen in training, kept for state-dict compatibility with PyTorch.
    public let batchesTracked: Tensor
    public let momentum: Float
    public let epsilon: Float
    public var isTraining = true
    /// Set for synchronised batch norm: sums statistics over all data-parallel ranks.
    public var statisticsReducer: StatisticsReducer?

    public init(channels: Int, momentum: Float = 0.1, epsilon: Float = 1e-5) {
        weight = Tensor(repeating: 1, shape: [channels], requiresGrad: true)
        bias = Tensor(zeros: [channels], requiresGrad: true)
        runningMean = Tensor(zeros: [channels])
        runningVariance = Tensor(repeating: 1, shape: [channels])
        batchesTracked = Tensor(zeros: [])
        self.momentum = momentum
        self.epsilon = epsilon
    }

    public var ownParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }
    public var ownBuffers: [(String, Tensor)] {
        [("running_mean", runningMean), ("running_var", runningVariance), ("num_batches_tracked", batchesTracked)]
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        if isTraining { batchesTracked.data[0] += 1 }
        return batchNorm(
            x, weight: weight, bias: bias, runningMean: runningMean, runningVariance: runningVariance,
            training: isTraining, momentum: momentum, epsilon: epsilon, reducer: isTraining ? statisticsReducer : nil)
    }
}

/// Layer norm over the last dimension.
public final class LayerNorm: Layer {
    public let weight: Tensor?
    public let bias: Tensor?
    public let epsilon: Float
    public var isTraining = true

    public init(dimensions: Int, epsilon: Float = 1e-5, affine: Bool = true) {
        weight = affine ? Tensor(repeating: 1, shape: [dimensions], requiresGrad: true) : nil
        bias = affine ? Tensor(zeros: [dimensions], requiresGrad: true) : nil
        self.epsilon = epsilon
    }

    public var ownParameters: [(String, Tensor)] {
        guard let weight, let bias else { return [] }
        return [("weight", weight), ("bias", bias)]
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { layerNorm(x, weight: weight, bias: bias, epsilon: epsilon) }
}
