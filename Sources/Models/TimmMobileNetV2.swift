import Foundation
import Layers
import Tensors

/// timm's channel rounding (`make_divisible`): to a multiple of 8, never below 90% of the value.
func makeDivisible(_ value: Double, divisor: Int = 8) -> Int {
    var rounded = max(divisor, Int(value + Double(divisor) / 2) / divisor * divisor)
    if Double(rounded) < 0.9 * value { rounded += divisor }
    return rounded
}

/// timm's `mobilenetv2_100` (`timm/models/efficientnet.py`, `_gen_mobilenet_v2`): a 3x3 stride-2
/// stem, a depthwise-separable block, inverted residual stages (expansion 6, ReLU6, linear
/// bottlenecks, a shortcut where stride and width allow), a 1x1 head to 1280 channels, pooling,
/// `classifier`; timm's names (`conv_stem`, `blocks.i.j.conv_pw/conv_dw/conv_pwl`, ...).
/// Argument: `channel_multiplier` (timm's generator argument, rounding as timm does). Taps: the
/// outputs at strides 2, 4, 8, 16 and 32 (timm's feature_info: blocks 0, 1, 2, 4, 6).
public final class TimmMobileNetV2: ImageClassifier {
    public let architecture: String
    let convStem: Conv2d, bn1: BatchNorm2d
    let blocks: Sequential
    let convHead: Conv2d, bn2: BatchNorm2d
    let classifier: Linear
    static let tapStages: Set<Int> = [0, 1, 2, 4, 6]
    public var isTraining = true

    public init(
        architecture: String, channelMultiplier: Double, inputChannels: Int, classes: Int,
        generator: inout RandomGenerator
    ) {
        self.architecture = architecture
        func round(_ channels: Int) -> Int { makeDivisible(Double(channels) * channelMultiplier) }
        let stem = round(32)
        convStem = Conv2d(
            inputChannels: inputChannels, outputChannels: stem, kernelSize: 3, stride: 2, padding: 1, bias: false,
            generator: &generator)
        bn1 = BatchNorm2d(channels: stem)
        var stages: [any Layer] = [
            Sequential([DepthwiseSeparableBlock(inputs: stem, outputs: round(16), generator: &generator)])
        ]
        var inputs = round(16)
        for (repeats, stride, width) in [(2, 2, 24), (3, 2, 32), (4, 2, 64), (3, 1, 96), (3, 2, 160), (1, 1, 320)] {
            var blocks: [any Layer] = []
            for r in 0..<repeats {
                blocks.append(
                    TimmInvertedResidual(
                        inputs: inputs, outputs: round(width), stride: r == 0 ? stride : 1, generator: &generator))
                inputs = round(width)
            }
            stages.append(Sequential(blocks))
        }
        blocks = Sequential(stages)
        let features = max(1280, round(1280))
        convHead = Conv2d(
            inputChannels: inputs, outputChannels: features, kernelSize: 1, bias: false, generator: &generator)
        bn2 = BatchNorm2d(channels: features)
        classifier = Linear(inputDimensions: features, outputDimensions: classes, generator: &generator)
        // timm's EfficientNet init: Kaiming-normal (fan out, per group) convolutions.
        for (_, p) in namedParameters() where p.rank == 4 {
            let perGroup = p.shape[1] == 1 ? 1 : p.shape[0]
            Initializer.kaimingNormalFanOut(p, fanOut: perGroup * p.shape[2] * p.shape[3], generator: &generator)
        }
    }

    public var children: [(String, any Module)] {
        [
            ("conv_stem", convStem), ("bn1", bn1), ("blocks", blocks), ("conv_head", convHead), ("bn2", bn2),
            ("classifier", classifier),
        ]
    }

    public func forward(_ images: Tensor) -> ModelOutput {
        var x = relu6(bn1(convStem(images)))
        var taps: [FeatureTap] = []
        for (index, stage) in blocks.layers.enumerated() {
            x = stage(x)
            if Self.tapStages.contains(index) { taps.append(FeatureTap(tensor: x, layout: .spatial)) }
        }
        let pooled = adaptiveAvgPool2d(relu6(bn2(convHead(x))), outputSize: (1, 1)).flatten()
        return ModelOutput(logits: classifier(pooled), taps: taps)
    }
}

/// timm's DepthwiseSeparableConv: depthwise 3x3 + BN + ReLU6, pointwise 1x1 + BN (linear),
/// plus the input where the width is kept.
final class DepthwiseSeparableBlock: Layer {
    let convDW: Conv2d, bn1: BatchNorm2d, convPW: Conv2d, bn2: BatchNorm2d
    let hasSkip: Bool
    var isTraining = true

    init(inputs: Int, outputs: Int, generator: inout RandomGenerator) {
        convDW = Conv2d(
            inputChannels: inputs, outputChannels: inputs, kernelSize: 3, padding: 1, groups: inputs, bias: false,
            generator: &generator)
        bn1 = BatchNorm2d(channels: inputs)
        convPW = Conv2d(
            inputChannels: inputs, outputChannels: outputs, kernelSize: 1, bias: false, generator: &generator)
        bn2 = BatchNorm2d(channels: outputs)
        hasSkip = inputs == outputs
    }

    var children: [(String, any Module)] { [("conv_dw", convDW), ("bn1", bn1), ("conv_pw", convPW), ("bn2", bn2)] }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let y = bn2(convPW(relu6(bn1(convDW(x)))))
        return hasSkip ? y + x : y
    }
}

/// timm's InvertedResidual: 1x1 expansion (6x) + BN + ReLU6, depthwise 3x3 + BN + ReLU6,
/// 1x1 linear projection + BN, plus the input when the stride is 1 and the width is kept.
final class TimmInvertedResidual: Layer {
    let convPW: Conv2d, bn1: BatchNorm2d, convDW: Conv2d, bn2: BatchNorm2d, convPWL: Conv2d, bn3: BatchNorm2d
    let hasSkip: Bool
    var isTraining = true

    init(inputs: Int, outputs: Int, stride: Int, generator: inout RandomGenerator) {
        let hidden = makeDivisible(Double(inputs * 6))
        convPW = Conv2d(
            inputChannels: inputs, outputChannels: hidden, kernelSize: 1, bias: false, generator: &generator)
        bn1 = BatchNorm2d(channels: hidden)
        convDW = Conv2d(
            inputChannels: hidden, outputChannels: hidden, kernelSize: 3, stride: stride, padding: 1, groups: hidden,
            bias: false, generator: &generator)
        bn2 = BatchNorm2d(channels: hidden)
        convPWL = Conv2d(
            inputChannels: hidden, outputChannels: outputs, kernelSize: 1, bias: false, generator: &generator)
        bn3 = BatchNorm2d(channels: outputs)
        hasSkip = stride == 1 && inputs == outputs
    }

    var children: [(String, any Module)] {
        [("conv_pw", convPW), ("bn1", bn1), ("conv_dw", convDW), ("bn2", bn2), ("conv_pwl", convPWL), ("bn3", bn3)]
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let y = bn3(convPWL(relu6(bn2(convDW(relu6(bn1(convPW(x))))))))
        return hasSkip ? y + x : y
    }
}

extension ModelRegistry {
    /// timm's MobileNetV2.
    static let timmMobileNets: [Entry] = [
        Entry(
            name: "mobilenetv2_100", family: "cnn",
            summary: "timm mobilenetv2_100: inverted residuals (expansion 6, ReLU6), head 1280, stride 32",
            arguments: ["channel_multiplier"], classifier: "classifier"
        ) { shape, classes, arguments, generator in
            TimmMobileNetV2(
                architecture: "mobilenetv2_100",
                channelMultiplier: try arguments.number("channel_multiplier", default: 1),
                inputChannels: shape[0], classes: classes, generator: &generator)
        }.estimating { _, classes, arguments in
            // The body's 1.82 M weights at multiplier 1 (widths scale with it, weights with its
            // square), the 1x1 head conv from 320 x multiplier channels to 1280 (wider above
            // multiplier 1), and the classifier.
            let multiplier = try arguments.number("channel_multiplier", default: 1)
            let features = 1280 * max(1, multiplier)
            return 1.82e6 * multiplier * multiplier + 320 * multiplier * features + features * Double(classes + 1)
        }
    ]
}
