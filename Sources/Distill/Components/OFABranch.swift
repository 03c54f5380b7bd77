import Layers
import Models
import Tensors

/// OFA's exit branch from an intermediate student stage to logits. For feature maps: stride-2
/// depthwise-separable blocks (depthwise 3x3 + BN + ReLU, pointwise 1x1 doubling the channels +
/// BN + ReLU) down to the last stage's grid, global average pooling, Linear. For tokens: one
/// TransBlock, the mean over tokens, Linear.
public final class OFABranch: Module {
    let blocks: Sequential?
    let transformer: TransformerBlock?
    let head: Linear
    public var isTraining = true

    public init(
        tapShape: [Int], layout: TapLayout, finalGrid: (Int, Int), classes: Int, generator: inout RandomGenerator
    ) {
        switch layout {
        case .spatial:
            var channels = tapShape[1], size = tapShape[2]
            var layers: [any Layer] = []
            while size > finalGrid.0 {
                layers += [
                    Conv2d(
                        inputChannels: channels, outputChannels: channels, kernelSize: 3, stride: 2, padding: 1,
                        groups: channels, bias: false, generator: &generator),
                    BatchNorm2d(channels: channels), Activation.relu,
                    Conv2d(
                        inputChannels: channels, outputChannels: 2 * channels, kernelSize: 1, bias: false,
                        generator: &generator),
                    BatchNorm2d(channels: 2 * channels), Activation.relu,
                ]
                channels *= 2
                size = (size + 1) / 2
            }
            blocks = Sequential(layers)
            transformer = nil
            head = Linear(inputDimensions: channels, outputDimensions: classes, generator: &generator)
        case .tokens:
            let width = tapShape[2]
            blocks = nil
            transformer = TransBlock.make(width: width, generator: &generator)
            head = Linear(inputDimensions: width, outputDimensions: classes, generator: &generator)
        }
    }

    public var children: [(String, any Module)] {
        (blocks.map { [("blocks", $0 as any Module)] } ?? [])
            + (transformer.map { [("transformer", $0 as any Module)] } ?? []) + [("head", head)]
    }

    public func callAsFunction(_ tap: FeatureTap) -> Tensor {
        if let blocks {
            let features = blocks(tap.tensor)
            return head(adaptiveAvgPool2d(features, outputSize: (1, 1)).flatten())
        }
        return head(transformer!(tap.tensor).mean(axes: [1]))
    }
}
