import Layers
import Tensors

/// The CIFAR ResNet basic block: conv3x3-BN-ReLU-conv3x3-BN plus a shortcut (1x1 conv + BN
/// when the shape changes), then ReLU.
final class BasicBlock: Layer {
    let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d
    let downsample: Sequential?
    var isTraining = true

    init(inputChannels: Int, outputChannels: Int, stride: Int, generator: inout RandomGenerator) {
        conv1 = Conv2d(
            inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: 3, stride: stride, padding: 1,
            bias: false, generator: &generator)
        bn1 = BatchNorm2d(channels: outputChannels)
        conv2 = Conv2d(
            inputChannels: outputChannels, outputChannels: outputChannels, kernelSize: 3, padding: 1, bias: false,
            generator: &generator)
        bn2 = BatchNorm2d(channels: outputChannels)
        if stride != 1 || inputChannels != outputChannels {
            downsample = Sequential([
                Conv2d(
                    inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: 1, stride: stride,
                    bias: false, generator: &generator),
                BatchNorm2d(channels: outputChannels),
            ])
        } else {
            downsample = nil
        }
    }

    var children: [(String, any Module)] {
        [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2)]
            + (downsample.map { [("downsample", $0 as any Module)] } ?? [])
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let residual = downsample.map { $0(x) } ?? x
        return relu(bn2(conv2(relu(bn1(conv1(x))))) + residual)
    }
}

/// CIFAR-style ResNet (He et al. 2016, as in the RepDistiller/DKD code): a 3x3 stem, three
/// stages of basic blocks at strides 1/2/2, global average pooling and a linear head.
/// Taps: the output of each stage.
public final class ResNet: ImageClassifier {
    public let architecture: String
    let conv1: Conv2d, bn1: BatchNorm2d
    let layer1: Sequential, layer2: Sequential, layer3: Sequential
    let fc: Linear
    public var isTraining = true

    /// `depth` = 6n + 2 (n blocks per stage); `widths` = [stem, stage1, stage2, stage3].
    public init(
        architecture: String, depth: Int, widths: [Int], inputChannels: Int, classes: Int,
        generator: inout RandomGenerator
    ) {
        ensure(
            (depth - 2) % 6 == 0 && widths.count == 4,
            "ResNet: depth \(depth) is not 6n+2 or widths \(widths) are not 4")
        self.architecture = architecture
        let blocks = (depth - 2) / 6
        conv1 = Conv2d(
            inputChannels: inputChannels, outputChannels: widths[0], kernelSize: 3, padding: 1, bias: false,
            generator: &generator)
        bn1 = BatchNorm2d(channels: widths[0])
        func stage(_ input: Int, _ output: Int, _ stride: Int, _ generator: inout RandomGenerator) -> Sequential {
            var layers: [any Layer] = []
            for i in 0..<blocks {
                layers.append(
                    BasicBlock(
                        inputChannels: i == 0 ? input : output, outputChannels: output, stride: i == 0 ? stride : 1,
                        generator: &generator))
            }
            return Sequential(layers)
        }
        layer1 = stage(widths[0], widths[1], 1, &generator)
        layer2 = stage(widths[1], widths[2], 2, &generator)
        layer3 = stage(widths[2], widths[3], 2, &generator)
        fc = Linear(inputDimensions: widths[3], outputDimensions: classes, generator: &generator)
        // Kaiming-normal (fan out) convolutions, as torchvision's and RepDistiller's ResNets.
        for (_, p) in namedParameters() where p.rank == 4 {
            Initializer.kaimingNormalFanOut(p, fanOut: p.shape[0] * p.shape[2] * p.shape[3], generator: &generator)
        }
    }

    public var children: [(String, any Module)] {
        [("conv1", conv1), ("bn1", bn1), ("layer1", layer1), ("layer2", layer2), ("layer3", layer3), ("fc", fc)]
    }

    public func forward(_ images: Tensor) -> ModelOutput {
        let stem = relu(bn1(conv1(images)))
        let f1 = layer1(stem), f2 = layer2(f1), f3 = layer3(f2)
        let pooled = adaptiveAvgPool2d(f3, outputSize: (1, 1)).flatten()
        return ModelOutput(logits: fc(pooled), taps: [f1, f2, f3].map { FeatureTap(tensor: $0, layout: .spatial) })
    }
}

extension ModelRegistry {
    /// The CIFAR ResNets (CRD's resnet8 ... resnet32x4).
    static let cifarResNets: [Entry] = [
        resnet("resnet8", depth: 8, widths: [16, 16, 32, 64]),
        resnet("resnet20", depth: 20, widths: [16, 16, 32, 64]),
        resnet("resnet56", depth: 56, widths: [16, 16, 32, 64]),
        resnet("resnet8x4", depth: 8, widths: [32, 64, 128, 256]),
        resnet("resnet32x4", depth: 32, widths: [32, 64, 128, 256]),
    ]

    fileprivate static func resnet(_ name: String, depth: Int, widths: [Int]) -> Entry {
        Entry(
            name: name, family: "cnn",
            summary:
                "CIFAR ResNet, \((depth - 2) / 6) basic blocks per stage, widths \(widths[1...].map(String.init).joined(separator: "/"))"
        ) { shape, classes, generator in
            ResNet(
                architecture: name, depth: depth, widths: widths, inputChannels: shape[0], classes: classes,
                generator: &generator)
        }
    }
}
