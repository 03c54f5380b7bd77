import Tensors

/// 2-D convolution layer; weight (out, in / groups, kh, kw).
public final class Conv2d: Layer {
    public let weight: Tensor
    public let bias: Tensor?
    public let stride: (Int, Int)
    public let padding: (Int, Int)
    public let groups: Int
    public var isTraining = true

    public init(
        inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
        groups: Int = 1, bias hasBias: Bool = true, generator: inout RandomGenerator
    ) {
        ensure(
            inputChannels % groups == 0 && outputChannels % groups == 0,
            "Conv2d: channels \(inputChannels) -> \(outputChannels) not divisible by groups \(groups)")
        weight = Tensor(zeros: [outputChannels, inputChannels / groups, kernelSize, kernelSize], requiresGrad: true)
        bias = hasBias ? Tensor(zeros: [outputChannels], requiresGrad: true) : nil
        self.stride = (stride, stride)
        self.padding = (padding, padding)
        self.groups = groups
        Initializer.pytorchDefault(
            weight: weight, bias: bias, fanIn: inputChannels / groups * kernelSize * kernelSize, generator: &generator)
    }

    public var ownParameters: [(String, Tensor)] { [("weight", weight)] + (bias.map { [("bias", $0)] } ?? []) }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, groups: groups)
    }
}
