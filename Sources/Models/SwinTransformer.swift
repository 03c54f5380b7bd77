import Layers
import Settings
import Tensors

/// timm's `get_relative_position_index`: for each (query, key) pair of a window's tokens, the row
/// of the (2h-1)(2w-1) bias table for their offset.
func relativePositionIndex(windowHeight h: Int, windowWidth w: Int) -> [Int] {
    var index: [Int] = []
    index.reserveCapacity(h * w * h * w)
    for i in 0..<(h * w) {
        for j in 0..<(h * w) {
            let dy = i / w - j / w + h - 1, dx = i % w - j % w + w - 1
            index.append(dy * (2 * w - 1) + dx)
        }
    }
    return index
}

/// timm's `WindowAttention`: multi-head attention inside each window with a learned relative
/// position bias per head (`relative_position_bias_table`), and an optional constant mask.
final class WindowAttention: Module {
    let qkv: Linear, proj: Linear
    let relativePositionBiasTable: Tensor
    let positionIndex: [Int]
    let heads: Int
    var isTraining = true

    init(width: Int, heads: Int, window: (Int, Int), generator: inout RandomGenerator) {
        self.heads = heads
        qkv = Linear(inputDimensions: width, outputDimensions: 3 * width, generator: &generator)
        proj = Linear(inputDimensions: width, outputDimensions: width, generator: &generator)
        relativePositionBiasTable = Tensor(zeros: [(2 * window.0 - 1) * (2 * window.1 - 1), heads], requiresGrad: true)
        positionIndex = relativePositionIndex(windowHeight: window.0, windowWidth: window.1)
    }

    var ownParameters: [(String, Tensor)] { [("relative_position_bias_table", relativePositionBiasTable)] }
    var children: [(String, any Module)] { [("qkv", qkv), ("proj", proj)] }

    /// (windows x B, N, C) tokens to the same shape.
    func callAsFunction(_ x: Tensor, mask: Tensor?) -> Tensor {
        let n = x.shape[1]
        let bias = relativePositionBiasTable.gatherRows(positionIndex).reshape([n, n, heads]).permute([2, 0, 1])
        return proj(packedSelfAttention(qkv(x), heads: heads, bias: bias, mask: mask))
    }
}

/// timm's `SwinTransformerBlock` on (B, H, W, C) maps: x + attention within windows (cyclically
/// shifted by half a window in every second block, with the mask that keeps regions that were
/// not neighbours apart), then x + MLP; both branches under stochastic depth. Maps that are not a
/// multiple of the window are zero-padded at the bottom and right, as timm pads them.
final class SwinBlock: Layer {
    let norm1: LayerNorm, attn: WindowAttention, norm2: LayerNorm, mlp: MLP
    let window: (Int, Int), shift: (Int, Int)
    let mask: Tensor?
    let dropPathRate: Float
    var isTraining = true

    init(
        width: Int, heads: Int, window: (Int, Int), shift: (Int, Int), featureSize: (Int, Int), mlpRatio: Double,
        dropPathRate: Float, generator: inout RandomGenerator
    ) {
        self.window = window
        self.shift = shift
        self.dropPathRate = dropPathRate
        norm1 = LayerNorm(dimensions: width)
        attn = WindowAttention(width: width, heads: heads, window: window, generator: &generator)
        norm2 = LayerNorm(dimensions: width)
        mlp = MLP(inputDimensions: width, hiddenDimensions: Int(Double(width) * mlpRatio), generator: &generator)
        mask =
            shift == (0, 0) ? nil : SwinBlock.shiftedWindowMask(featureSize: featureSize, window: window, shift: shift)
    }

    var children: [(String, any Module)] { [("norm1", norm1), ("attn", attn), ("norm2", norm2), ("mlp", mlp)] }

    /// timm's `get_attn_mask`: the padded map cut into nine regions by the shift; tokens of one
    /// window from different regions get -100 (not -inf, as timm) on their scores.
    static func shiftedWindowMask(featureSize: (Int, Int), window: (Int, Int), shift: (Int, Int)) -> Tensor {
        let paddedH = (featureSize.0 + window.0 - 1) / window.0 * window.0,
            paddedW = (featureSize.1 + window.1 - 1) / window.1 * window.1
        func region(_ i: Int, size: Int, window: Int, shift: Int) -> Int {
            i < size - window ? 0 : (i < size - shift ? 1 : 2)
        }
        let windowsH = paddedH / window.0, windowsW = paddedW / window.1, n = window.0 * window.1
        let mask = Tensor(zeros: [windowsH * windowsW, n, n])
        for wy in 0..<windowsH {
            for wx in 0..<windowsW {
                let labels = (0..<n).map { t -> Int in
                    let y = wy * window.0 + t / window.1, x = wx * window.1 + t % window.1
                    return 3 * region(y, size: paddedH, window: window.0, shift: shift.0)
                        + region(x, size: paddedW, window: window.1, shift: shift.1)
                }
                let base = mask.data + (wy * windowsW + wx) * n * n
                for i in 0..<n { for j in 0..<n where labels[i] != labels[j] { base[i * n + j] = -100 } }
            }
        }
        return mask
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let b = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3]
        var y = norm1(x)
        if shift.0 > 0 { y = y.rolled(by: -shift.0, axis: 1) }
        if shift.1 > 0 { y = y.rolled(by: -shift.1, axis: 2) }
        let padH = (window.0 - h % window.0) % window.0, padW = (window.1 - w % window.1) % window.1
        if padH > 0 || padW > 0 { y = y.padded([(0, 0), (0, padH), (0, padW), (0, 0)]) }
        let rows = (h + padH) / window.0, columns = (w + padW) / window.1
        // Partition into windows: (B, rows, wh, columns, ww, C) -> (B x rows x columns, wh x ww, C).
        let windows = y.reshape([b, rows, window.0, columns, window.1, c]).permute([0, 1, 3, 2, 4, 5]).reshape([
            b * rows * columns, window.0 * window.1, c,
        ])
        let attended = attn(windows, mask: mask)
        y = attended.reshape([b, rows, columns, window.0, window.1, c]).permute([0, 1, 3, 2, 4, 5]).reshape([
            b, h + padH, w + padW, c,
        ])
        if padH > 0 { y = y.slice(axis: 1, 0..<h) }
        if padW > 0 { y = y.slice(axis: 2, 0..<w) }
        if shift.0 > 0 { y = y.rolled(by: shift.0, axis: 1) }
        if shift.1 > 0 { y = y.rolled(by: shift.1, axis: 2) }
        let attendedResidual = x + dropPath(y, probability: dropPathRate, training: isTraining)
        return attendedResidual
            + dropPath(mlp(norm2(attendedResidual)), probability: dropPathRate, training: isTraining)
    }
}

/// timm's `PatchMerging`: each 2x2 neighbourhood's channels concatenated (odd sizes zero-padded),
/// LayerNorm over 4C, a Linear to the next width without bias.
public final class PatchMerging: Layer {
    let norm: LayerNorm, reduction: Linear
    public var isTraining = true

    public init(width: Int, outputWidth: Int, generator: inout RandomGenerator) {
        norm = LayerNorm(dimensions: 4 * width)
        reduction = Linear(
            inputDimensions: 4 * width, outputDimensions: outputWidth, bias: false, generator: &generator)
    }

    public var children: [(String, any Module)] { [("norm", norm), ("reduction", reduction)] }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var y = x
        let padH = x.shape[1] % 2, padW = x.shape[2] % 2
        if padH > 0 || padW > 0 { y = y.padded([(0, 0), (0, padH), (0, padW), (0, 0)]) }
        let b = y.shape[0], h = y.shape[1], w = y.shape[2], c = y.shape[3]
        // (B, H/2, 2, W/2, 2, C) -> (B, H/2, W/2, [column offset, row offset, C]): timm's channel order.
        let merged = y.reshape([b, h / 2, 2, w / 2, 2, c]).permute([0, 1, 3, 4, 2, 5]).reshape([b, h / 2, w / 2, 4 * c])
        return reduction(norm(merged))
    }
}

/// Patch embedding for Swin: a strided convolution, then LayerNorm over channels last (B, H, W, C).
final class SwinPatchEmbedding: Layer {
    let proj: Conv2d, norm: LayerNorm
    var isTraining = true

    init(inputChannels: Int, width: Int, patchSize: Int, generator: inout RandomGenerator) {
        proj = Conv2d(
            inputChannels: inputChannels, outputChannels: width, kernelSize: patchSize, stride: patchSize,
            generator: &generator)
        norm = LayerNorm(dimensions: width)
    }

    var children: [(String, any Module)] { [("proj", proj), ("norm", norm)] }

    func callAsFunction(_ images: Tensor) -> Tensor { norm(proj(images).permute([0, 2, 3, 1])) }
}

/// timm's classifier head on channels-last maps (`ClassifierHead`, average pooling): `head.fc`.
final class PooledLinearHead: Module {
    let fc: Linear
    var isTraining = true

    init(width: Int, classes: Int, generator: inout RandomGenerator) {
        fc = Linear(inputDimensions: width, outputDimensions: classes, generator: &generator)
    }

    var children: [(String, any Module)] { [("fc", fc)] }

    /// (B, H, W, C) to logits.
    func callAsFunction(_ x: Tensor) -> Tensor { fc(x.mean(axes: [1, 2])) }
}

/// timm's `SwinTransformer` (`timm/models/swin_transformer.py`), as `swin_tiny_patch4_window7_224`
/// builds it: patch 4, window 7, widths 96-192-384-768, depths 2-2-6-2, heads 3-6-12-24, MLP
/// ratio 4, stochastic depth 0.1 (timm's default), timm's parameter names. A stage whose map
/// is no larger than the window attends over the whole map without shifting, as in timm.
/// Taps: each stage's output as (B, C, H, W).
public final class SwinTransformer: ImageClassifier {
    public let architecture: String
    let patchEmbed: SwinPatchEmbedding
    let layers: Sequential
    let norm: LayerNorm
    let head: PooledLinearHead
    public var isTraining = true

    public init(
        architecture: String, inputChannels: Int, imageSize: (Int, Int), classes: Int, patchSize: Int, window: Int,
        embedDim: Int, depths: [Int], heads: [Int], mlpRatio: Double, dropPathRate: Float,
        generator: inout RandomGenerator
    ) throws {
        self.architecture = architecture
        patchEmbed = SwinPatchEmbedding(
            inputChannels: inputChannels, width: embedDim, patchSize: patchSize, generator: &generator)
        let grid = (imageSize.0 / patchSize, imageSize.1 / patchSize)
        let total = depths.reduce(0, +)
        var blockIndex = 0
        var stages: [any Layer] = []
        // Patch merging pads odd maps: each stage's map is the previous one halved, rounded up.
        var size = grid
        for (stage, depth) in depths.enumerated() {
            let width = embedDim << stage
            if stage > 0 { size = ((size.0 + 1) / 2, (size.1 + 1) / 2) }
            guard width % heads[stage] == 0 else {
                throw UserError(
                    "model '\(architecture)': stage \(stage) width \(width) is not a multiple of its \(heads[stage]) heads"
                )
            }
            let windowSize = (min(size.0, window), min(size.1, window))
            let shift = (size.0 <= window ? 0 : window / 2, size.1 <= window ? 0 : window / 2)
            let downsample =
                stage == 0 ? nil : PatchMerging(width: width / 2, outputWidth: width, generator: &generator)
            var blocks: [SwinBlock] = []
            for i in 0..<depth {
                blocks.append(
                    SwinBlock(
                        width: width, heads: heads[stage], window: windowSize, shift: i % 2 == 0 ? (0, 0) : shift,
                        featureSize: size, mlpRatio: mlpRatio,
                        dropPathRate: linearDropPathRate(dropPathRate, block: blockIndex, of: total),
                        generator: &generator))
                blockIndex += 1
            }
            stages.append(Stage(downsample: downsample, blocks: blocks))
        }
        layers = Sequential(stages)
        let features = embedDim << (depths.count - 1)
        norm = LayerNorm(dimensions: features)
        head = PooledLinearHead(width: features, classes: classes, generator: &generator)
        // timm's init (`init_weights_vit_timm`): truncated normal (std 0.02) linear weights and
        // bias tables, zero linear biases; the patch convolution keeps PyTorch's default.
        for p in parameters() where p.rank == 2 { Initializer.truncatedNormal(p, std: 0.02, generator: &generator) }
        forEachModule { module in
            if let linear = module as? Linear { linear.bias?.fill(0) }
        }
    }

    public var children: [(String, any Module)] {
        [("patch_embed", patchEmbed), ("layers", layers), ("norm", norm), ("head", head)]
    }
    public var noWeightDecay: Set<String> {
        Set(namedParameters().map(\.0).filter { $0.hasSuffix("relative_position_bias_table") })
    }

    public func forward(_ images: Tensor) -> ModelOutput {
        var x = patchEmbed(images)
        var taps: [FeatureTap] = []
        for stage in layers.layers {
            x = stage(x)
            taps.append(FeatureTap(tensor: x.permute([0, 3, 1, 2]), layout: .spatial))
        }
        return ModelOutput(logits: head(norm(x)), taps: taps)
    }
}

extension ModelRegistry {
    /// timm's Swin Transformer.
    static let swinTransformers: [Entry] = [
        Entry(
            name: "swin_tiny_patch4_window7_224", family: "vit",
            summary:
                "timm swin_tiny_patch4_window7_224: patch 4, window 7, widths 96-768, depths 2-2-6-2, heads 3-6-12-24, shifted windows, relative position bias",
            arguments: [
                "img_size", "patch_size", "window_size", "embed_dim", "depths", "num_heads", "mlp_ratio",
                "drop_path_rate",
            ],
            classifier: "head.fc"
        ) { shape, classes, arguments, generator in
            try checkImageSize(arguments, shape, model: "swin_tiny_patch4_window7_224")
            let patch = try arguments.integers("patch_size", default: [4], count: 1)[0]
            try checkPatchGrid(shape, patch: patch, model: "swin_tiny_patch4_window7_224")
            let depths = try arguments.integers("depths", default: [2, 2, 6, 2], range: 1...256)
            let heads = try arguments.integers(
                "num_heads", default: [3, 6, 12, 24], count: depths.count, range: 1...1024)
            return try SwinTransformer(
                architecture: "swin_tiny_patch4_window7_224", inputChannels: shape[0], imageSize: (shape[1], shape[2]),
                classes: classes,
                patchSize: patch, window: try arguments.integers("window_size", default: [7], count: 1)[0],
                embedDim: try arguments.integers("embed_dim", default: [96], count: 1)[0], depths: depths, heads: heads,
                mlpRatio: try arguments.number("mlp_ratio", default: 4),
                dropPathRate: Float(try arguments.fraction("drop_path_rate", default: 0.1)), generator: &generator)
        }.filtering(.swin).estimating { shape, classes, arguments in
            let patch = Double(try arguments.integers("patch_size", default: [4], count: 1)[0])
            let window = Double(try arguments.integers("window_size", default: [7], count: 1)[0])
            let embed = Double(try arguments.integers("embed_dim", default: [96], count: 1)[0])
            let depths = try arguments.integers("depths", default: [2, 2, 6, 2], range: 1...256)
            let heads = try arguments.integers(
                "num_heads", default: [3, 6, 12, 24], count: depths.count, range: 1...1024)
            let ratio = try arguments.number("mlp_ratio", default: 4)
            var c = embed
            var total = Double(shape[0]) * patch * patch * c + 3 * c
            for (stage, depth) in depths.enumerated() {
                if stage > 0 {
                    total += 8 * c + 8 * c * c
                    c *= 2
                }
                let hidden = (c * ratio).rounded(.down)
                let block =
                    4 * c + 4 * c * c + 4 * c + (2 * window - 1) * (2 * window - 1) * Double(heads[stage])
                    + 2 * c * hidden + hidden + c
                total += Double(depth) * block
            }
            return total + 2 * c + c * Double(classes + 1)
        }
    ]
}
