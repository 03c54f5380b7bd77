import Layers
import Tensors

/// timm's `resnet18`, `resnet34` and `resnet50` (`timm/models/resnet.py`, the default
/// configuration: 7x7 stride-2 stem of 64 channels, 3x3 stride-2 max-pool, four stages at
/// strides 1/2/2/2, 1x1 convolution + BN shortcuts, global average pooling, `fc`), with timm's
/// parameter names, so timm's weights load and sfkd's load into timm. Arguments as
/// `timm.create_model` takes them: `layers` (blocks per stage), `channels` (stage widths), and
/// sfkd's `stem=cifar` (a 3x3 stride-1 stem without max-pool for 32x32 inputs, as CIFAR KD code
/// does; the names stay timm's) and `drop_path_rate` (stochastic depth, rising linearly over
/// the blocks as in timm). Taps: the output of each stage.
public final class TimmResNet: ImageClassifier {
    public enum Block: Sendable { case basic, bottleneck }

    public let architecture: String
    let conv1: Conv2d, bn1: BatchNorm2d
    let usesMaxPool: Bool
    let layers: [Sequential]
    let fc: Linear
    public var isTraining = true

    public init(
        architecture: String, block: Block, layers blockCounts: [Int], channels: [Int], cifarStem: Bool,
        dropPathRate: Float = 0,
        inputChannels: Int, classes: Int, generator: inout RandomGenerator
    ) {
        self.architecture = architecture
        let stemWidth = 64
        conv1 =
            cifarStem
            ? Conv2d(
                inputChannels: inputChannels, outputChannels: stemWidth, kernelSize: 3, padding: 1, bias: false,
                generator: &generator)
            : Conv2d(
                inputChannels: inputChannels, outputChannels: stemWidth, kernelSize: 7, stride: 2, padding: 3,
                bias: false, generator: &generator)
        bn1 = BatchNorm2d(channels: stemWidth)
        usesMaxPool = !cifarStem
        let expansion = block == .basic ? 1 : 4
        var inputs = stemWidth
        var stages: [Sequential] = []
        // timm's linear decay over all blocks of the network.
        let totalBlocks = blockCounts.reduce(0, +)
        var blockIndex = 0
        for (index, (count, planes)) in zip(blockCounts, channels).enumerated() {
            let stride = index == 0 ? 1 : 2
            var blocks: [any Layer] = []
            for b in 0..<count {
                let downsample =
                    b == 0 && (stride != 1 || inputs != planes * expansion)
                    ? Sequential([
                        Conv2d(
                            inputChannels: inputs, outputChannels: planes * expansion, kernelSize: 1, stride: stride,
                            bias: false, generator: &generator),
                        BatchNorm2d(channels: planes * expansion),
                    ])
                    : nil
                let rate = linearDropPathRate(dropPathRate, block: blockIndex, of: totalBlocks)
                switch block {
                case .basic:
                    blocks.append(
                        TimmBasicBlock(
                            inputs: inputs, planes: planes, stride: b == 0 ? stride : 1, downsample: downsample,
                            dropPathRate: rate, generator: &generator))
                case .bottleneck:
                    blocks.append(
                        TimmBottleneck(
                            inputs: inputs, planes: planes, stride: b == 0 ? stride : 1, downsample: downsample,
                            dropPathRate: rate, generator: &generator))
                }
                inputs = planes * expansion
                blockIndex += 1
            }
            stages.append(Sequential(blocks))
        }
        layers = stages
        fc = Linear(inputDimensions: inputs, outputDimensions: classes, generator: &generator)
        // timm's init: Kaiming-normal (fan out) convolutions, BN 1 and 0, the last BN of each block zero.
        for (_, p) in namedParameters() where p.rank == 4 {
            Initializer.kaimingNormalFanOut(p, fanOut: p.shape[0] * p.shape[2] * p.shape[3], generator: &generator)
        }
        for stage in layers {
            for case let residual as any ZeroInitialisedLast in stage.layers { residual.lastNorm.weight.fill(0) }
        }
    }

    public var children: [(String, any Module)] {
        [("conv1", conv1), ("bn1", bn1)]
            + layers.enumerated().map { ("layer\($0.offset + 1)", $0.element as any Module) } + [("fc", fc)]
    }

    public func forward(_ images: Tensor) -> ModelOutput {
        var x = relu(bn1(conv1(images)))
        if usesMaxPool { x = maxPool2d(x, kernel: (3, 3), stride: (2, 2), padding: (1, 1)) }
        var taps: [FeatureTap] = []
        for stage in layers {
            x = stage(x)
            taps.append(FeatureTap(tensor: x, layout: .spatial))
        }
        return ModelOutput(logits: fc(adaptiveAvgPool2d(x, outputSize: (1, 1)).flatten()), taps: taps)
    }
}

/// A residual block whose last BatchNorm starts at zero weight (timm's `zero_init_last`).
protocol ZeroInitialisedLast {
    var lastNorm: BatchNorm2d { get }
}

/// timm's BasicBlock: conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU.
final class TimmBasicBlock: Layer, ZeroInitialisedLast {
    let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d
    let downsample: Sequential?
    let dropPathRate: Float
    var isTraining = true
    var lastNorm: BatchNorm2d { bn2 }

    init(
        inputs: Int, planes: Int, stride: Int, downsample: Sequential?, dropPathRate: Float,
        generator: inout RandomGenerator
    ) {
        self.dropPathRate = dropPathRate
        conv1 = Conv2d(
            inputChannels: inputs, outputChannels: planes, kernelSize: 3, stride: stride, padding: 1, bias: false,
            generator: &generator)
        bn1 = BatchNorm2d(channels: planes)
        conv2 = Conv2d(
            inputChannels: planes, outputChannels: planes, kernelSize: 3, padding: 1, bias: false, generator: &generator
        )
        bn2 = BatchNorm2d(channels: planes)
        self.downsample = downsample
    }

    var children: [(String, any Module)] {
        [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2)]
            + (downsample.map { [("downsample", $0 as any Module)] } ?? [])
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let shortcut = downsample.map { $0(x) } ?? x
        return relu(
            dropPath(bn2(conv2(relu(bn1(conv1(x))))), probability: dropPathRate, training: isTraining) + shortcut)
    }
}

/// timm's Bottleneck (expansion 4, the stride on the 3x3): conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN, plus the shortcut, then ReLU.
final class TimmBottleneck: Layer, ZeroInitialisedLast {
    let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d, conv3: Conv2d, bn3: BatchNorm2d
    let downsample: Sequential?
    let dropPathRate: Float
    var isTraining = true
    var lastNorm: BatchNorm2d { bn3 }

    init(
        inputs: Int, planes: Int, stride: Int, downsample: Sequential?, dropPathRate: Float,
        generator: inout RandomGenerator
    ) {
        self.dropPathRate = dropPathRate
        conv1 = Conv2d(inputChannels: inputs, outputChannels: planes, kernelSize: 1, bias: false, generator: &generator)
        bn1 = BatchNorm2d(channels: planes)
        conv2 = Conv2d(
            inputChannels: planes, outputChannels: planes, kernelSize: 3, stride: stride, padding: 1, bias: false,
            generator: &generator)
        bn2 = BatchNorm2d(channels: planes)
        conv3 = Conv2d(
            inputChannels: planes, outputChannels: planes * 4, kernelSize: 1, bias: false, generator: &generator)
        bn3 = BatchNorm2d(channels: planes * 4)
        self.downsample = downsample
    }

    var children: [(String, any Module)] {
        [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2), ("conv3", conv3), ("bn3", bn3)]
            + (downsample.map { [("downsample", $0 as any Module)] } ?? [])
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let shortcut = downsample.map { $0(x) } ?? x
        return relu(
            dropPath(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))), probability: dropPathRate, training: isTraining)
                + shortcut)
    }
}

extension ModelRegistry {
    /// timm's ResNets.
    static let timmResNets: [Entry] = [
        timmResNet("resnet18", block: .basic, layers: [2, 2, 2, 2]),
        timmResNet("resnet34", block: .basic, layers: [3, 4, 6, 3]),
        timmResNet("resnet50", block: .bottleneck, layers: [3, 4, 6, 3]),
    ]

    /// timm's ResNet family: `layers` and `channels` as timm takes them, `stem=cifar` for 32x32 inputs.
    fileprivate static func timmResNet(_ name: String, block: TimmResNet.Block, layers: [Int]) -> Entry {
        let kind = block == .basic ? "basic blocks" : "bottlenecks"
        return Entry(
            name: name, family: "cnn",
            summary:
                "timm \(name): \(kind) \(layers.map(String.init).joined(separator: "-")), widths 64/128/256/512 (stem=cifar: 3x3 stride-1 stem, no max-pool)",
            arguments: ["layers", "channels", "stem", "drop_path_rate"]
        ) { shape, classes, arguments, generator in
            TimmResNet(
                architecture: name, block: block,
                layers: try arguments.integers("layers", default: layers, count: 4, range: 1...64),
                channels: try arguments.integers("channels", default: [64, 128, 256, 512], count: 4),
                cifarStem: try arguments.choice("stem", default: "imagenet", options: ["imagenet", "cifar"]) == "cifar",
                dropPathRate: Float(try arguments.fraction("drop_path_rate")),
                inputChannels: shape[0], classes: classes, generator: &generator)
        }.estimating { shape, classes, arguments in
            let layers = try arguments.integers("layers", default: layers, count: 4, range: 1...64)
            let channels = try arguments.integers("channels", default: [64, 128, 256, 512], count: 4).map(Double.init)
            let expansion: Double = block == .basic ? 1 : 4
            let stem =
                try arguments.choice("stem", default: "imagenet", options: ["imagenet", "cifar"]) == "cifar" ? 9.0 : 49
            var inputs = 64.0
            var total = Double(shape[0]) * stem * 64 + 2 * 64
            for (stage, count) in layers.enumerated() {
                let planes = channels[stage], outputs = planes * expansion
                for index in 0..<count {
                    total +=
                        block == .basic
                        ? 9 * inputs * planes + 9 * planes * planes + 4 * planes
                        : inputs * planes + 9 * planes * planes + planes * outputs + 4 * planes + 2 * outputs
                    if index == 0 && (stage > 0 || inputs != outputs) { total += inputs * outputs + 2 * outputs }
                    inputs = outputs
                }
            }
            return total + inputs * Double(classes) + Double(classes)
        }
    }
}
