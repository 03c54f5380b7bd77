import Tensors

/// y = x W^T + b; weight (out, in).
public final class Linear: Layer {
    public let weight: Tensor
    public let bias: Tensor?
    public var isTraining = true

    public init(
        inputDimensions: Int, outputDimensions: Int, bias hasBias: Bool = true, generator: inout RandomGenerator
    ) {
        weight = Tensor(zeros: [outputDimensions, inputDimensions], requiresGrad: true)
        bias = hasBias ? Tensor(zeros: [outputDimensions], requiresGrad: true) : nil
        Initializer.pytorchDefault(weight: weight, bias: bias, fanIn: inputDimensions, generator: &generator)
    }

    public var ownParameters: [(String, Tensor)] { [("weight", weight)] + (bias.map { [("bias", $0)] } ?? []) }

    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight, bias: bias) }
}
