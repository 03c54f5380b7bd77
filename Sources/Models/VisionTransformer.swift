import Layers
import Settings
import Tensors

/// Pre-norm transformer block (timm's `Block`): x + attn(norm1(x)), then x + mlp(norm2(x)).
public final class TransformerBlock: Layer {
    let norm1: LayerNorm, attn: MultiHeadAttention, norm2: LayerNorm, mlp: MLP
    /// Stochastic depth of both residual branches (timm's `drop_path`).
    let dropPathRate: Float
    public var isTraining = true

    public init(
        width: Int, heads: Int, mlpWidth: Int, epsilon: Float = 1e-6, dropPathRate: Float = 0, qkvBias: Bool = true,
        generator: inout RandomGenerator
    ) {
        self.dropPathRate = dropPathRate
        norm1 = LayerNorm(dimensions: width, epsilon: epsilon)
        attn = MultiHeadAttention(dimensions: width, heads: heads, qkvBias: qkvBias, generator: &generator)
        norm2 = LayerNorm(dimensions: width, epsilon: epsilon)
        mlp = MLP(inputDimensions: width, hiddenDimensions: mlpWidth, generator: &generator)
    }

    public var children: [(String, any Module)] { [("norm1", norm1), ("attn", attn), ("norm2", norm2), ("mlp", mlp)] }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard dropPathRate > 0 else {
            let h = x + attn(norm1(x))
            return h + mlp(norm2(h))
        }
        let h = x + dropPath(attn(norm1(x)), probability: dropPathRate, training: isTraining)
        return h + dropPath(mlp(norm2(h)), probability: dropPathRate, training: isTraining)
    }
}

/// Vision Transformer with timm's parameter names and layout: convolutional patch embedding, class token,
/// learned position embedding, pre-norm blocks, final norm, head on the class token.
/// Taps: the tokens after evenly spaced blocks (class token first).
public final class VisionTransformer: ImageClassifier {
    public let architecture: String
    let patchEmbed: PatchEmbedding
    public let classToken: Tensor
    public let positionEmbedding: Tensor
    let blocks: Sequential
    let norm: LayerNorm
    let head: Linear
    let tapBlocks: [Int]
    public var isTraining = true

    public init(
        architecture: String, inputChannels: Int, imageSize: (Int, Int), classes: Int, patchSize: Int,
        width: Int, depth: Int, heads: Int, mlpWidth: Int, dropPathRate: Float = 0, generator: inout RandomGenerator
    ) {
        self.architecture = architecture
        patchEmbed = PatchEmbedding(
            inputChannels: inputChannels, width: width, patchSize: patchSize, generator: &generator)
        let tokens = (imageSize.0 / patchSize) * (imageSize.1 / patchSize) + 1
        classToken = Tensor(zeros: [1, 1, width], requiresGrad: true)
        positionEmbedding = Tensor(zeros: [1, tokens, width], requiresGrad: true)
        blocks = Sequential(
            (0..<depth).map { i in
                TransformerBlock(
                    width: width, heads: heads, mlpWidth: mlpWidth,
                    dropPathRate: linearDropPathRate(dropPathRate, block: i, of: depth), generator: &generator)
            })
        norm = LayerNorm(dimensions: width, epsilon: 1e-6)
        head = Linear(inputDimensions: width, outputDimensions: classes, generator: &generator)
        tapBlocks = evenlySpacedBlocks(depth: depth)
        // Embeddings as timm (truncated normal, std 0.02). Linear layers keep PyTorch's default
        // init: timm's truncated normal (0.02) learned markedly slower in the short schedules
        // this trainer runs (Fashion-MNIST, AdamW 1e-3, 100 steps: loss 1.27 against 0.93).
        Initializer.truncatedNormal(positionEmbedding, std: 0.02, generator: &generator)
        Initializer.truncatedNormal(classToken, std: 0.02, generator: &generator)
    }

    public var ownParameters: [(String, Tensor)] { [("cls_token", classToken), ("pos_embed", positionEmbedding)] }
    public var children: [(String, any Module)] {
        [("patch_embed", patchEmbed), ("blocks", blocks), ("norm", norm), ("head", head)]
    }
    public var noWeightDecay: Set<String> { ["cls_token", "pos_embed"] }

    public func forward(_ images: Tensor) -> ModelOutput {
        let (patches, h, w) = patchEmbed(images)
        let b = patches.shape[0], c = patches.shape[2]
        ensure(
            patches.shape[1] + 1 == positionEmbedding.shape[1],
            "\(architecture): \(patches.shape[1]) patches for a position embedding of \(positionEmbedding.shape[1] - 1)"
        )
        let embedded = concat([classToken.broadcast(to: [b, 1, c]), patches], axis: 1) + positionEmbedding
        let (x, taps) = runBlocks(
            blocks, on: embedded, tapBlocks: tapBlocks, layout: .tokens(prefixTokens: 1, gridHeight: h, gridWidth: w))
        let classFeatures = norm(x).slice(axis: 1, 0..<1).reshape([b, c])
        return ModelOutput(logits: head(classFeatures), taps: taps)
    }
}

extension ModelRegistry {
    /// The small-image ViTs and timm's DeiT / ViT.
    static let visionTransformers: [Entry] = [
        vit("vit-tiny", width: 128, depth: 4, heads: 4, mlpWidth: 256),
        vit("vit-small", width: 192, depth: 8, heads: 6, mlpWidth: 384),
        timmViT("deit_tiny_patch16_224", width: 192, depth: 12, heads: 3),
        timmViT("deit_small_patch16_224", width: 384, depth: 12, heads: 6),
        timmViT("vit_small_patch16_224", width: 384, depth: 12, heads: 6).normalised(
            mean: ImageNetStatistics.half, std: ImageNetStatistics.half),
    ]

    fileprivate static func vit(_ name: String, width: Int, depth: Int, heads: Int, mlpWidth: Int) -> Entry {
        Entry(
            name: name, family: "vit",
            summary: "ViT, patch 4, width \(width), depth \(depth), \(heads) heads, MLP \(mlpWidth), class token",
            classifier: "head"
        ) { shape, classes, generator in
            try checkPatchGrid(shape, patch: 4, model: name)
            return VisionTransformer(
                architecture: name, inputChannels: shape[0], imageSize: (shape[1], shape[2]), classes: classes,
                patchSize: 4, width: width, depth: depth, heads: heads, mlpWidth: mlpWidth, generator: &generator)
        }
    }

    /// timm's VisionTransformer (DeiT and ViT without distillation token): patch 16, MLP ratio 4,
    /// the class token's features to the head; `img_size`, `patch_size`, `embed_dim`, `depth`,
    /// `num_heads`, `mlp_ratio` as timm takes them (`img_size` must be the input's).
    fileprivate static func timmViT(_ name: String, width: Int, depth: Int, heads: Int) -> Entry {
        Entry(
            name: name, family: "vit",
            summary: "timm \(name): patch 16, width \(width), depth \(depth), \(heads) heads, MLP ratio 4, class token",
            arguments: ["img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "drop_path_rate"],
            classifier: "head"
        ) { shape, classes, arguments, generator in
            try checkImageSize(arguments, shape, model: name)
            let patch = try arguments.integers("patch_size", default: [16], count: 1)[0]
            let embed = try arguments.integers("embed_dim", default: [width], count: 1)[0]
            let numHeads = try arguments.integers("num_heads", default: [heads], count: 1)[0]
            guard embed % numHeads == 0 else {
                throw UserError("model '\(name)': embed_dim \(embed) is not a multiple of num_heads \(numHeads)")
            }
            let ratio = try arguments.number("mlp_ratio", default: 4)
            try checkPatchGrid(shape, patch: patch, model: name)
            return VisionTransformer(
                architecture: name, inputChannels: shape[0], imageSize: (shape[1], shape[2]), classes: classes,
                patchSize: patch,
                width: embed, depth: try arguments.integers("depth", default: [depth], count: 1, range: 1...256)[0],
                heads: numHeads,
                mlpWidth: Int(Double(embed) * ratio), dropPathRate: Float(try arguments.fraction("drop_path_rate")),
                generator: &generator)
        }.filtering(.visionTransformer).estimating { shape, classes, arguments in
            let patch = Double(try arguments.integers("patch_size", default: [16], count: 1)[0])
            let d = Double(try arguments.integers("embed_dim", default: [width], count: 1)[0])
            let blocks = Double(try arguments.integers("depth", default: [depth], count: 1, range: 1...256)[0])
            let hidden = (d * (try arguments.number("mlp_ratio", default: 4))).rounded(.down)
            let tokens = (Double(shape[1]) / patch).rounded(.down) * (Double(shape[2]) / patch).rounded(.down) + 1
            let block = 4 * d + 4 * d * d + 4 * d + 2 * d * hidden + hidden + d
            return Double(shape[0]) * patch * patch * d + d + tokens * d + d + blocks * block + 2 * d
                + d * Double(classes) + Double(classes)
        }
    }
}
