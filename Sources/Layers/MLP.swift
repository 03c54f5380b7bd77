import Tensors

/// Two linear layers with GELU between (timm's `Mlp`: `fc1`, `fc2`).
public final class MLP: Layer {
    public let fc1: Linear
    public let fc2: Linear
    public var isTraining = true

    public init(
        inputDimensions: Int, hiddenDimensions: Int, outputDimensions: Int? = nil, generator: inout RandomGenerator
    ) {
        fc1 = Linear(inputDimensions: inputDimensions, outputDimensions: hiddenDimensions, generator: &generator)
        fc2 = Linear(
            inputDimensions: hiddenDimensions, outputDimensions: outputDimensions ?? inputDimensions,
            generator: &generator)
    }

    public var children: [(String, any Module)] { [("fc1", fc1), ("fc2", fc2)] }

    public func callAsFunction(_ x: Tensor) -> Tensor { fc2(gelu(fc1(x))) }

    /// The MLP over the token axis of (B, N, C): `self(x.transposed(1, 2)).transposed(1, 2)`
    /// without the transposed copies (MLP-Mixer's token mixing).
    public func acrossTokens(_ x: Tensor) -> Tensor {
        let hidden = gelu(linearAcrossTokens(x, weight: fc1.weight, bias: fc1.bias))
        return linearAcrossTokens(hidden, weight: fc2.weight, bias: fc2.bias)
    }
}

/// Layers applied in order, named "0", "1", ... as in `nn.Sequential`.
public final class Sequential: Layer {
    public let layers: [any Layer]
    public var isTraining = true

    public init(_ layers: [any Layer]) { self.layers = layers }

    public var children: [(String, any Module)] { layers.enumerated().map { (String($0.offset), $0.element) } }

    public func callAsFunction(_ x: Tensor) -> Tensor { layers.reduce(x) { $1($0) } }
}

/// Parameter-free activations as layers, for use in `Sequential`.
public final class Activation: Layer {
    public let function: (Tensor) -> Tensor
    public var isTraining = true

    public init(_ function: @escaping (Tensor) -> Tensor) { self.function = function }

    public static var relu: Activation { Activation(Tensors.relu) }
    public static var gelu: Activation { Activation(Tensors.gelu) }

    public func callAsFunction(_ x: Tensor) -> Tensor { function(x) }
}
