import Layers
import Models
import Spectral
import Tensors

/// y = ReLU(x + BN(Conv3x3(ReLU(BN(Conv3x3(x)))))), padding 1: the local (detail) stream.
public final class ResConvBlock: Layer {
    let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d
    public var isTraining = true

    public init(channels: Int, generator: inout RandomGenerator) {
        conv1 = Conv2d(
            inputChannels: channels, outputChannels: channels, kernelSize: 3, padding: 1, bias: false,
            generator: &generator)
        bn1 = BatchNorm2d(channels: channels)
        conv2 = Conv2d(
            inputChannels: channels, outputChannels: channels, kernelSize: 3, padding: 1, bias: false,
            generator: &generator)
        bn2 = BatchNorm2d(channels: channels)
    }

    public var children: [(String, any Module)] { [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2)] }

    public func callAsFunction(_ x: Tensor) -> Tensor { relu(x + bn2(conv2(relu(bn1(conv1(x)))))) }
}

/// The global (approximation and interaction) streams' block: the ViT's pre-norm transformer
/// block on (B, N, d) tokens with 4 heads (fewer when d is small, each head at least 8 wide),
/// MLP ratio 2, GELU, LayerNorm epsilon 1e-5.
public enum TransBlock {
    public static func heads(for width: Int) -> Int { max(1, min(4, width / 8)) }

    public static func make(width: Int, generator: inout RandomGenerator) -> TransformerBlock {
        TransformerBlock(
            width: width, heads: heads(for: width), mlpWidth: 2 * width, epsilon: 1e-5, generator: &generator)
    }
}

/// Dual-stream dual-stage refinement of the student's wavelet bands (README, "Method").
/// Stage 1: every band is embedded to width d; detail bands go through a shared ResConvBlock,
/// the coarsest approximation as tokens (+ PE4D) through a TransBlock. Stage 2: the tokens of
/// all bands, concatenated (+ PE4D), through one TransBlock. A per-band sigmoid gate fuses the
/// two stages, and a 1x1 convolution projects back to the teacher's channels.
public final class DS2S: Module {
    public let width: Int
    let embed: Conv2d
    let detail: ResConvBlock
    let approximation: TransformerBlock
    let interaction: TransformerBlock
    let fuse: Conv2d
    let project: Conv2d
    public var isTraining = true
    private var encodings: [[Int]: Tensor] = [:]

    /// The default width: min(C_t, 64) rounded down to a multiple of 8, at least 8.
    public static func defaultWidth(teacherChannels: Int) -> Int { max(8, min(teacherChannels, 64) / 8 * 8) }

    public init(teacherChannels: Int, width: Int, generator: inout RandomGenerator) {
        ensure(width >= 8 && width % 8 == 0, "DS2S: width \(width) must be a positive multiple of 8")
        self.width = width
        embed = Conv2d(inputChannels: teacherChannels, outputChannels: width, kernelSize: 1, generator: &generator)
        detail = ResConvBlock(channels: width, generator: &generator)
        approximation = TransBlock.make(width: width, generator: &generator)
        interaction = TransBlock.make(width: width, generator: &generator)
        fuse = Conv2d(inputChannels: 2 * width, outputChannels: width, kernelSize: 1, generator: &generator)
        project = Conv2d(inputChannels: width, outputChannels: teacherChannels, kernelSize: 1, generator: &generator)
    }

    public var children: [(String, any Module)] {
        [
            ("embed", embed), ("detail", detail), ("approximation", approximation), ("interaction", interaction),
            ("fuse", fuse), ("project", project),
        ]
    }

    /// PE4D of one band as a (1, h*w, d) constant, cached by band.
    private func encoding(level: Int, orientation: PositionalEncoding4D.Orientation, rows: Int, columns: Int) -> Tensor
    {
        let key = [level, orientation.rawValue, rows, columns]
        if let cached = encodings[key] { return cached }
        let codes = PositionalEncoding4D.codes(
            width: width, level: level, orientation: orientation, rows: rows, columns: columns)
        let tensor = Tensor(codes, shape: [1, rows * columns, width])
        encodings[key] = tensor
        return tensor
    }

    private func tokens(_ map: Tensor) -> Tensor { map.flatten(from: 2).transposed(1, 2) }

    private func map(_ tokens: Tensor, like shape: [Int]) -> Tensor {
        tokens.transposed(1, 2).reshape([shape[0], width, shape[2], shape[3]])
    }

    /// Refined bands, the same shapes as the input bands (C_t channels).
    public func callAsFunction(_ bands: WaveletBands) -> WaveletBands {
        let levels = bands.levels
        // Every band with its (level, orientation): detail bands finest first, then LL_J.
        var entries: [(Tensor, Int, PositionalEncoding4D.Orientation)] = []
        for (j, (lh, hl, hh)) in bands.details.enumerated() {
            entries += [(lh, j + 1, .lh), (hl, j + 1, .hl), (hh, j + 1, .hh)]
        }
        entries.append((bands.approximation, levels, .ll))

        // Stage 1.
        var stage1: [Tensor] = []
        for (band, level, orientation) in entries {
            let embedded = embed(band)
            if orientation == .ll {
                let pe = encoding(level: level, orientation: .ll, rows: band.shape[2], columns: band.shape[3])
                stage1.append(map(approximation(tokens(embedded) + pe), like: embedded.shape))
            } else {
                stage1.append(detail(embedded))
            }
        }
        // Stage 2: one sequence of all bands.
        let sequences = zip(stage1, entries).map { features, entry in
            tokens(features)
                + encoding(level: entry.1, orientation: entry.2, rows: features.shape[2], columns: features.shape[3])
        }
        let lengths = sequences.map { $0.shape[1] }
        let mixed = interaction(concat(sequences, axis: 1)).split(lengths, axis: 1)
        // Gated fusion and projection.
        var refined: [Tensor] = []
        for (s1, s2tokens) in zip(stage1, mixed) {
            let s2 = map(s2tokens, like: s1.shape)
            let gate = sigmoid(fuse(concat([s1, s2], axis: 1)))
            refined.append(project(s1 + gate * (s2 - s1)))
        }
        var output = bands
        for j in 0..<levels { output.details[j] = (refined[3 * j], refined[3 * j + 1], refined[3 * j + 2]) }
        output.approximation = refined[3 * levels]
        return output
    }
}
