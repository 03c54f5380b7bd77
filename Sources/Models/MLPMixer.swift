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
        let mixed = x + mlpTokens.acrossTokens(norm1(x))
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

    public init(
        architecture: String, inputChannels: Int, imageSize: (Int, Int), classes: Int, patchSize: Int,
        width: Int, depth: Int, tokenMLPWidth: Int, channelMLPWidth: Int, generator: inout RandomGenerator
    ) {
        self.architecture = architecture
        stem = PatchEmbedding(inputChannels: inputChannels, width: width, patchSize: patchSize, generator: &generator)
        let tokens = (imageSize.0 / patchSize) * (imageSize.1 / patchSize)
        blocks = Sequential(
            (0..<depth).map { _ in
                MixerBlock(
                    tokens: tokens, width: width, tokenMLPWidth: tokenMLPWidth, channelMLPWidth: channelMLPWidth,
                    generator: &generator)
            })
        norm = LayerNorm(dimensions: width, epsilon: 1e-6)
        head = Linear(inputDimensions: width, outputDimensions: classes, generator: &generator)
        tapBlocks = evenlySpacedBlocks(depth: depth)
        // Linear layers keep PyTorch's default init, as in the ViT (see there).
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

extension ModelRegistry {
    /// timm's MLP-Mixer and ResMLP, and the small-image Mixer.
    static let mlpModels: [Entry] = [
        timmMLP("mixer_b16_224", width: 768, depth: 12, residual: false).normalised(
            mean: ImageNetStatistics.half, std: ImageNetStatistics.half),
        timmMLP("resmlp_12_224", width: 384, depth: 12, residual: true),
        Entry(
            name: "mixer-tiny", family: "mixer",
            summary: "MLP-Mixer, patch 4, width 128, depth 4, token MLP 64, channel MLP 256", classifier: "head"
        ) { shape, classes, generator in
            try checkPatchGrid(shape, patch: 4, model: "mixer-tiny")
            return MLPMixer(
                architecture: "mixer-tiny", inputChannels: shape[0], imageSize: (shape[1], shape[2]), classes: classes,
                patchSize: 4, width: 128, depth: 4, tokenMLPWidth: 64, channelMLPWidth: 256, generator: &generator)
        },
    ]

    /// timm's MLP-Mixer (`mixer_b16_224`: token MLP 0.5x, channel MLP 4x) and ResMLP
    /// (`resmlp_12_224`); `img_size`, `patch_size`, `num_blocks`, `embed_dim` as timm's model
    /// class takes them (timm fixes all but `img_size` for these names; sfkd lets them vary for
    /// small inputs), `drop_path_rate` for ResMLP.
    fileprivate static func timmMLP(_ name: String, width: Int, depth: Int, residual: Bool) -> Entry {
        let summary =
            residual
            ? "timm \(name): patch 16, width \(width), \(depth) ResMLP blocks (affine norms, cross-patch linear, layer scale)"
            : "timm \(name): patch 16, width \(width), \(depth) mixer blocks, token MLP 0.5x, channel MLP 4x"
        return Entry(
            name: name, family: "mixer", summary: summary,
            arguments: ["img_size", "patch_size", "num_blocks", "embed_dim"] + (residual ? ["drop_path_rate"] : []),
            classifier: "head"
        ) { shape, classes, arguments, generator in
            try checkImageSize(arguments, shape, model: name)
            let patch = try arguments.integers("patch_size", default: [16], count: 1)[0]
            let embed = try arguments.integers("embed_dim", default: [width], count: 1)[0]
            let blocks = try arguments.integers("num_blocks", default: [depth], count: 1, range: 1...256)[0]
            try checkPatchGrid(shape, patch: patch, model: name)
            if residual {
                return ResMLP(
                    architecture: name, inputChannels: shape[0], imageSize: (shape[1], shape[2]), classes: classes,
                    patchSize: patch,
                    width: embed, depth: blocks, dropPathRate: Float(try arguments.fraction("drop_path_rate")),
                    generator: &generator)
            }
            return MLPMixer(
                architecture: name, inputChannels: shape[0], imageSize: (shape[1], shape[2]), classes: classes,
                patchSize: patch,
                width: embed, depth: blocks, tokenMLPWidth: embed / 2, channelMLPWidth: 4 * embed, generator: &generator
            )
        }.filtering(.resmlp).estimating { shape, classes, arguments in
            let patch = Double(try arguments.integers("patch_size", default: [16], count: 1)[0])
            let d = Double(try arguments.integers("embed_dim", default: [width], count: 1)[0])
            let blocks = Double(try arguments.integers("num_blocks", default: [depth], count: 1, range: 1...256)[0])
            let n = (Double(shape[1]) / patch).rounded(.down) * (Double(shape[2]) / patch).rounded(.down)
            // ResMLP: affine norms, a cross-patch linear, layer scales; Mixer: LayerNorms, a token MLP of d/2.
            let block =
                residual ? 4 * d + n * n + n + 2 * d + 8 * d * d + 5 * d : 4 * d + n * d + d / 2 + n + 8 * d * d + 5 * d
            return Double(shape[0]) * patch * patch * d + d + blocks * block + 2 * d + d * Double(classes + 1)
        }
    }
}
