import Layers
import Settings
import Tensors

/// LayerNorm over the channels of an NCHW map at each position, with affine (timm's `LayerNorm2d`).
final class LayerNorm2d: Layer {
    let weight: Tensor, bias: Tensor
    let epsilon: Float
    var isTraining = true

    init(channels: Int, epsilon: Float = 1e-6) {
        weight = Tensor(repeating: 1, shape: [channels], requiresGrad: true)
        bias = Tensor(zeros: [channels], requiresGrad: true)
        self.epsilon = epsilon
    }

    var ownParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let c = weight.count
        return channelLayerNorm(x, epsilon: epsilon) * weight.reshape([1, c, 1, 1]) + bias.reshape([1, c, 1, 1])
    }
}

/// timm's ConvNeXtBlock: 7x7 depthwise convolution, LayerNorm over channels (channels last),
/// Linear 4x, GELU, Linear back, layer scale `gamma`, stochastic depth, plus the input.
final class ConvNeXtBlock: Layer {
    let gamma: Tensor
    let convDW: Conv2d
    let norm: LayerNorm
    let mlp: MLP
    let dropPathRate: Float
    var isTraining = true

    init(channels: Int, layerScale: Float, dropPathRate: Float, generator: inout RandomGenerator) {
        gamma = Tensor(repeating: layerScale, shape: [channels], requiresGrad: true)
        convDW = Conv2d(
            inputChannels: channels, outputChannels: channels, kernelSize: 7, padding: 3, groups: channels,
            generator: &generator)
        norm = LayerNorm(dimensions: channels, epsilon: 1e-6)
        mlp = MLP(inputDimensions: channels, hiddenDimensions: 4 * channels, generator: &generator)
        self.dropPathRate = dropPathRate
    }

    var ownParameters: [(String, Tensor)] { [("gamma", gamma)] }
    var children: [(String, any Module)] { [("conv_dw", convDW), ("norm", norm), ("mlp", mlp)] }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let channelsLast = convDW(x).permute([0, 2, 3, 1])
        let branch = mlp(norm(channelsLast))
        if isTraining && dropPathRate > 0 {
            let scaled = (branch * gamma).permute([0, 3, 1, 2])
            return dropPath(scaled, probability: dropPathRate, training: isTraining) + x
        }
        return layerScaledResidual(x, branchChannelsLast: branch, gamma: gamma)
    }
}

/// timm's classifier head of ConvNeXt (`NormMlpClassifierHead`): global average pooling, LayerNorm2d, Linear.
final class NormClassifierHead: Module {
    let norm: LayerNorm2d
    let fc: Linear
    var isTraining = true

    init(channels: Int, classes: Int, generator: inout RandomGenerator) {
        norm = LayerNorm2d(channels: channels)
        fc = Linear(inputDimensions: channels, outputDimensions: classes, generator: &generator)
    }

    var children: [(String, any Module)] { [("norm", norm), ("fc", fc)] }

    func callAsFunction(_ x: Tensor) -> Tensor { fc(norm(adaptiveAvgPool2d(x, outputSize: (1, 1))).flatten()) }
}

/// timm's `convnext_tiny` (`timm/models/convnext.py`): a 4x4 stride-4 patchify stem with
/// LayerNorm2d, four stages of ConvNeXt blocks (depths 3-3-9-3, widths 96-192-384-768), layer
/// scale 1e-6, and a pooled, normalised linear head; timm's names. Arguments: `depths`, `dims`,
/// `drop_path_rate` (linear over all blocks). Taps: the output of each stage.
public final class ConvNeXt: ImageClassifier {
    public let architecture: String
    let stem: Sequential
    let stages: Sequential
    let head: NormClassifierHead
    public var isTraining = true

    public init(
        architecture: String, depths: [Int], dims: [Int], dropPathRate: Float, inputChannels: Int, classes: Int,
        generator: inout RandomGenerator
    ) {
        self.architecture = architecture
        stem = Sequential([
            Conv2d(
                inputChannels: inputChannels, outputChannels: dims[0], kernelSize: 4, stride: 4, generator: &generator),
            LayerNorm2d(channels: dims[0]),
        ])
        let total = depths.reduce(0, +)
        var index = 0
        var built: [any Layer] = []
        for (stage, (depth, width)) in zip(depths, dims).enumerated() {
            let downsample =
                stage == 0
                ? nil
                : Sequential([
                    LayerNorm2d(channels: dims[stage - 1]),
                    Conv2d(
                        inputChannels: dims[stage - 1], outputChannels: width, kernelSize: 2, stride: 2,
                        generator: &generator),
                ])
            var blocks: [ConvNeXtBlock] = []
            for _ in 0..<depth {
                blocks.append(
                    ConvNeXtBlock(
                        channels: width, layerScale: 1e-6,
                        dropPathRate: linearDropPathRate(dropPathRate, block: index, of: total), generator: &generator))
                index += 1
            }
            built.append(Stage(downsample: downsample, blocks: blocks))
        }
        stages = Sequential(built)
        head = NormClassifierHead(channels: dims[dims.count - 1], classes: classes, generator: &generator)
        // timm's init: truncated normal (std 0.02) weights of convolutions and linear layers, zero biases.
        for (name, p) in namedParameters() {
            if p.rank == 4 || p.rank == 2 { Initializer.truncatedNormal(p, std: 0.02, generator: &generator) }
            if name.hasSuffix(".bias") { p.fill(0) }
        }
    }

    public var children: [(String, any Module)] { [("stem", stem), ("stages", stages), ("head", head)] }

    public func forward(_ images: Tensor) -> ModelOutput {
        var x = stem(images)
        var taps: [FeatureTap] = []
        for stage in stages.layers {
            x = stage(x)
            taps.append(FeatureTap(tensor: x, layout: .spatial))
        }
        return ModelOutput(logits: head(x), taps: taps)
    }
}

extension ModelRegistry {
    /// timm's ConvNeXt.
    static let convNeXts: [Entry] = [
        Entry(
            name: "convnext_tiny", family: "cnn",
            summary:
                "timm convnext_tiny: 7x7 depthwise blocks 3-3-9-3, widths 96-192-384-768, channels-last LayerNorm, layer scale",
            arguments: ["depths", "dims", "drop_path_rate"], classifier: "head.fc"
        ) { shape, classes, arguments, generator in
            let dims = try arguments.integers("dims", default: [96, 192, 384, 768], count: 4)
            guard shape[1] % 32 == 0 && shape[2] % 32 == 0 else {
                throw UserError(
                    "model 'convnext_tiny' downsamples by 32 (a 4x4 stem, three 2x2 stages); the input \(shape[1])x\(shape[2]) must be a multiple of 32"
                )
            }
            return ConvNeXt(
                architecture: "convnext_tiny",
                depths: try arguments.integers("depths", default: [3, 3, 9, 3], count: 4, range: 1...256), dims: dims,
                dropPathRate: Float(try arguments.fraction("drop_path_rate")), inputChannels: shape[0],
                classes: classes, generator: &generator)
        }.filtering(.convnext).estimating { shape, classes, arguments in
            let dims = try arguments.integers("dims", default: [96, 192, 384, 768], count: 4).map(Double.init)
            let depths = try arguments.integers("depths", default: [3, 3, 9, 3], count: 4, range: 1...256).map(
                Double.init)
            var total = Double(shape[0]) * 16 * dims[0] + 3 * dims[0] + 2 * dims[3] + dims[3] * Double(classes + 1)
            for stage in 0..<4 {
                let d = dims[stage]
                if stage > 0 { total += 2 * dims[stage - 1] + 4 * dims[stage - 1] * d + d }
                total += depths[stage] * (8 * d * d + 58 * d)
            }
            return total
        }
    ]
}
