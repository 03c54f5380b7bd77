import Layers
import Tensors

/// How a tapped feature is laid out.
public enum TapLayout: Equatable, Sendable {
    /// (B, C, H, W) feature maps.
    case spatial
    /// (B, N, C) tokens: `prefixTokens` (class tokens) first, then the patch tokens of a
    /// `gridHeight` x `gridWidth` grid in row-major order.
    case tokens(prefixTokens: Int, gridHeight: Int, gridWidth: Int)
}

/// One intermediate feature a distillation method can use.
public struct FeatureTap {
    public let tensor: Tensor
    public let layout: TapLayout

    public init(tensor: Tensor, layout: TapLayout) {
        self.tensor = tensor
        self.layout = layout
    }

    /// The feature as a (B, C, H, W) map: patch tokens reshaped onto their grid, class tokens dropped.
    public func spatialMap() -> Tensor {
        switch layout {
        case .spatial:
            return tensor
        case let .tokens(prefix, h, w):
            let b = tensor.shape[0], n = tensor.shape[1], c = tensor.shape[2]
            let patches = prefix > 0 ? tensor.slice(axis: 1, prefix..<n) : tensor
            return patches.permute([0, 2, 1]).reshape([b, c, h, w])
        }
    }
}

/// Logits and the stage outputs of one forward pass.
public struct ModelOutput {
    public let logits: Tensor
    public let taps: [FeatureTap]

    public init(logits: Tensor, taps: [FeatureTap]) {
        self.logits = logits
        self.taps = taps
    }
}

/// An image classifier from the registry: NCHW images in, logits and taps out.
public protocol ImageClassifier: Module {
    /// Registry name (`resnet20`, `vit-tiny`, ...).
    var architecture: String { get }
    func forward(_ images: Tensor) -> ModelOutput
    /// Parameter names exempt from weight decay besides biases and norms (position embeddings, class tokens).
    var noWeightDecay: Set<String> { get }
}

extension ImageClassifier {
    public var noWeightDecay: Set<String> { [] }
}
