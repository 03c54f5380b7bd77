import Layers
import Tensors

/// MobileNetV2 inverted residual: 1x1 expand, 3x3 depthwise, 1x1 linear projection, each with
/// BN (ReLU6 after the first two); a shortcut when the stride is 1 (1x1 conv + BN when the
/// channel count changes), as in the widely used CIFAR implementation.
final class InvertedResidual: Layer {
    let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d, conv3: Conv2d, bn3: BatchNorm2d
    let shortcut: Sequential?
    let stride: Int
    var isTraining = true

    init(inputChannels: Int, outputChannels: Int, expansion: Int, stride: Int, generator: inout RandomGenerator) {
        let hidden = inputChannels * expansion
        self.stride = stride
        conv1 = Conv2d(
            inputChannels: inputChannels, outputChannels: hidden, kernelSize: 1, bias: false, generator: &generator)
        bn1 = BatchNorm2d(channels: hidden)
        conv2 = Conv2d(
            inputChannels: hidden, outputChannels: hidden, kernelSize: 3, stride: stride, padding: 1, groups: hidden,
            bias: false, generator: &generator)
        bn2 = BatchNorm2d(channels: hidden)
        conv3 = Conv2d(
            inputChannels: hidden, outputChannels: outputChannels, kernelSize: 1, bias: false, generator: &generator)
        bn3 = BatchNorm2d(channels: outputChannels)
        if stride == 1 && inputChannels != outputChannels {
            shortcut = Sequential([
                Conv2d(
                    inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: 1, bias: false,
                    generator: &generator),
                BatchNorm2d(channels: outputChannels),
            ])
        } else {
            shortcut = nil
        }
    }

    var children: [(String, any Module)] {
        [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2), ("conv3", conv3), ("bn3", bn3)]
            + (shortcut.map { [("shortcut", $0 as any Module)] } ?? [])
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let out = bn3(conv3(relu6(bn2(conv2(relu6(bn1(conv1(x))))))))
        guard stride == 1 else { return out }
        return out + (shortcut.map { $0(x) } ?? x)
    }
}

/// MobileNetV2 for small images: stride 1 in the stem and in the second stage, so 32x32 inputs
/// end on a 4x4 grid. Taps: the end of each resolution (24, 32, 96 channels) and the final
/// 1x1 convolution (1280).
public final class MobileNetV2: ImageClassifier {
    public let architecture = "mobilenetv2"
    let conv1: Conv2d, bn1: BatchNorm2d
    let layers: Sequential
    let conv2: Conv2d, bn2: BatchNorm2d
    let linear: Linear
    /// Indices into `layers` after which a tap is taken.
    let tapAfter: [Int]
    public var isTraining = true

    /// (expansion, output channels, blocks, first stride)
    static let configuration: [(Int, Int, Int, Int)] = [
        (1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
    ]

    public init(inputChannels: Int, classes: Int, generator: inout RandomGenerator) {
        conv1 = Conv2d(
            inputChannels: inputChannels, outputChannels: 32, kernelSize: 3, padding: 1, bias: false,
            generator: &generator)
        bn1 = BatchNorm2d(channels: 32)
        var blocks: [any Layer] = []
        var taps: [Int] = []
        var channels = 32
        for (expansion, output, count, stride) in Self.configuration {
            for i in 0..<count {
                blocks.append(
                    InvertedResidual(
                        inputChannels: channels, outputChannels: output, expansion: expansion,
                        stride: i == 0 ? stride : 1, generator: &generator))
                channels = output
            }
            if [24, 32, 96].contains(output) { taps.append(blocks.count - 1) }
        }
        layers = Sequential(blocks)
        tapAfter = taps
        conv2 = Conv2d(inputChannels: 320, outputChannels: 1280, kernelSize: 1, bias: false, generator: &generator)
        bn2 = BatchNorm2d(channels: 1280)
        linear = Linear(inputDimensions: 1280, outputDimensions: classes, generator: &generator)
    }

    public var children: [(String, any Module)] {
        [("conv1", conv1), ("bn1", bn1), ("layers", layers), ("conv2", conv2), ("bn2", bn2), ("linear", linear)]
    }

    public func forward(_ images: Tensor) -> ModelOutput {
        var x = relu6(bn1(conv1(images)))
        var taps: [FeatureTap] = []
        for (i, block) in layers.layers.enumerated() {
            x = block(x)
            if tapAfter.contains(i) { taps.append(FeatureTap(tensor: x, layout: .spatial)) }
        }
        x = relu6(bn2(conv2(x)))
        taps.append(FeatureTap(tensor: x, layout: .spatial))
        let pooled = adaptiveAvgPool2d(x, outputSize: (1, 1)).flatten()
        return ModelOutput(logits: linear(pooled), taps: taps)
    }
}

extension ModelRegistry {
    /// MobileNetV2 for small images.
    static let cifarMobileNets: [Entry] = [
        Entry(
            name: "mobilenetv2", family: "cnn",
            summary: "MobileNetV2 for small images (stride 1 stem), inverted residuals with depthwise convolutions"
        ) { shape, classes, generator in
            MobileNetV2(inputChannels: shape[0], classes: classes, generator: &generator)
        }
    ]
}
