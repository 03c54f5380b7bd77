import Layers
import Tensors

/// Mixer block (timm's `MixerBlock`): token mixing across patches, then channel mixing.
final class MixerBlock: Layer {
    let norm1: LayerNorm, mlpTokens: MLP, norm2: LayerNorm, mlpChannels: MLP
    var isTraining = true

    init(tokens: Int, width: Int, tokenMLPWidth: Int, channelMLPWidth: Int, generator: inout RandomGenerator) {
        norm1 = LayerNorm(dimensions: width, epsilon: 1e-6)
        mlpTokens = MLP(inputDimensions: tokens, hiddenDimensions: tokenMLPWidth, generator: &generator)
        norm2 = LayerNorm(dimensions: width, epsilon: 1e-6)
        mlpChannels = MLP(inputDimensions: width, hiddenDimensions: channelMLPWidth, generator: &generator)
    }

    var children: [(String, any Module)] {
        [("norm1", norm1), ("mlp_tokens", mlpTokens), ("norm2", norm2), ("mlp_channels", mlpChannels)]
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let mixed = x + mlpTokens(norm1(x).transposed(1, 2)).transposed(1, 2)
        return mixed + mlpChannels(norm2(mixed))
    }
}

/// MLP-Mixer with timm's names: `stem.proj` patch embedding, mixer blocks, final norm, mean over
/// tokens, head. Taps: the tokens after evenly spaced blocks (no class token).
public final class MLPMixer: ImageClassifier {
    public let architecture: String
    let stem: PatchEmbedding
    let blocks: Sequential
    let norm: LayerNorm
    let head: Linear
    let tapBlocks: [Int]
    public var isTraining = true

    public init(architecture: String, inputChannels: Int, imageSize: (Int, Int), classes: Int, patchSize: Int,
                width: Int, depth: Int, tokenMLPWidth: Int, channelMLPWidth: Int, generator: inout RandomGenerator) {
        self.architecture = architecture
        stem = PatchEmbedding(inputChannels: inputChannels, width: width, patchSize: patchSize, generator: &generator)
        let tokens = (imageSize.0 / patchSize) * (imageSize.1 / patchSize)
        blocks = Sequential((0..<depth).map { _ in
            MixerBlock(tokens: tokens, width: width, tokenMLPWidth: tokenMLPWidth, channelMLPWidth: channelMLPWidth, generator: &generator)
        })
        norm = LayerNorm(dimensions: width, epsilon: 1e-6)
        head = Linear(inputDimensions: width, outputDimensions: classes, generator: &generator)
        tapBlocks = evenlySpacedBlocks(depth: depth)
        // Linear layers keep PyTorch's default init, as in the ViT (see there).
    }

    public var children: [(String, any Module)] { [("stem", stem), ("blocks", blocks), ("norm", norm), ("head", head)] }

    public func forward(_ images: Tensor) -> ModelOutput {
        let (patches, h, w) = stem(images)
        let (x, taps) = runBlocks(blocks, on: patches, tapBlocks: tapBlocks, layout: .tokens(prefixTokens: 0, gridHeight: h, gridWidth: w))
        return ModelOutput(logits: head(norm(x).mean(axes: [1])), taps: taps)
    }
}
