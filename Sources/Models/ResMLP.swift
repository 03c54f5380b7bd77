import Layers
import Tensors

/// ResMLP's normalisation (timm's `Affine`): x * alpha + beta, both (1, 1, C).
final class Affine: Layer {
    let alpha: Tensor, beta: Tensor
    var isTraining = true

    init(width: Int) {
        alpha = Tensor(repeating: 1, shape: [1, 1, width], requiresGrad: true)
        beta = Tensor(zeros: [1, 1, width], requiresGrad: true)
    }

    var ownParameters: [(String, Tensor)] { [("alpha", alpha), ("beta", beta)] }

    func callAsFunction(_ x: Tensor) -> Tensor { x * alpha + beta }
}

/// timm's ResMLP block (`ResBlock`): x + ls1 * linear_tokens(norm1(x) across tokens), then
/// x + ls2 * mlp_channels(norm2(x)), each branch under stochastic depth.
final class ResMLPBlock: Layer {
    let ls1: Tensor, ls2: Tensor
    let norm1: Affine, linearTokens: Linear, norm2: Affine, mlpChannels: MLP
    let dropPathRate: Float
    var isTraining = true

    init(tokens: Int, width: Int, layerScale: Float, dropPathRate: Float, generator: inout RandomGenerator) {
        ls1 = Tensor(repeating: layerScale, shape: [width], requiresGrad: true)
        ls2 = Tensor(repeating: layerScale, shape: [width], requiresGrad: true)
        norm1 = Affine(width: width)
        linearTokens = Linear(inputDimensions: tokens, outputDimensions: tokens, generator: &generator)
        norm2 = Affine(width: width)
        mlpChannels = MLP(inputDimensions: width, hiddenDimensions: 4 * width, generator: &generator)
        self.dropPathRate = dropPathRate
    }

    var ownParameters: [(String, Tensor)] { [("ls1", ls1), ("ls2", ls2)] }
    var children: [(String, any Module)] {
        [("norm1", norm1), ("linear_tokens", linearTokens), ("norm2", norm2), ("mlp_channels", mlpChannels)]
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let mixed = linearAcrossTokens(norm1(x), weight: linearTokens.weight, bias: linearTokens.bias)
        let tokens = mixed * ls1
        let h = x + dropPath(tokens, probability: dropPathRate, training: isTraining)
        return h + dropPath(mlpChannels(norm2(h)) * ls2, probability: dropPathRate, training: isTraining)
    }
}

/// timm's `resmlp_12_224` (`timm/models/mlp_mixer.py`): patch-16 embedding, 12 ResMLP blocks of
/// width 384 with affine norms, a cross-patch linear layer and layer scale 0.1, a final Affine,
/// the mean over tokens, `head`. Taps: the tokens after evenly spaced blocks.
public final class ResMLP: ImageClassifier {
    public let architecture: String
    let stem: PatchEmbedding
    let blocks: Sequential
    let norm: Affine
    let head: Linear
    let tapBlocks: [Int]
    public var isTraining = true

    public init(
        architecture: String, inputChannels: Int, imageSize: (Int, Int), classes: Int, patchSize: Int, width: Int,
        depth: Int,
        dropPathRate: Float, generator: inout RandomGenerator
    ) {
        self.architecture = architecture
        stem = PatchEmbedding(inputChannels: inputChannels, width: width, patchSize: patchSize, generator: &generator)
        let tokens = (imageSize.0 / patchSize) * (imageSize.1 / patchSize)
        blocks = Sequential(
            (0..<depth).map { i in
                ResMLPBlock(
                    tokens: tokens, width: width, layerScale: 0.1,
                    dropPathRate: linearDropPathRate(dropPathRate, block: i, of: depth), generator: &generator)
            })
        norm = Affine(width: width)
        head = Linear(inputDimensions: width, outputDimensions: classes, generator: &generator)
        tapBlocks = evenlySpacedBlocks(depth: depth)
    }

    public var children: [(String, any Module)] {
        [("stem", stem), ("blocks", blocks), ("norm", norm), ("head", head)]
    }

    public func forward(_ images: Tensor) -> ModelOutput {
        let (patches, h, w) = stem(images)
        let (x, taps) = runBlocks(
            blocks, on: patches, tapBlocks: tapBlocks, layout: .tokens(prefixTokens: 0, gridHeight: h, gridWidth: w))
        return ModelOutput(logits: head(norm(x).mean(axes: [1])), taps: taps)
    }
}
