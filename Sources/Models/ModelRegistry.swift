import Layers
import Tensors

/// Every model by name. Input channels, image size and class count come from the dataset.
public enum ModelRegistry {
    public struct Entry: Sendable {
        public let name: String
        public let family: String
        public let summary: String
        let build: @Sendable (_ inputShape: [Int], _ classes: Int, _ generator: inout RandomGenerator) throws -> any ImageClassifier
    }

    public static let entries: [Entry] = [
        resnet("resnet8", depth: 8, widths: [16, 16, 32, 64]),
        resnet("resnet20", depth: 20, widths: [16, 16, 32, 64]),
        resnet("resnet56", depth: 56, widths: [16, 16, 32, 64]),
        resnet("resnet8x4", depth: 8, widths: [32, 64, 128, 256]),
        resnet("resnet32x4", depth: 32, widths: [32, 64, 128, 256]),
        Entry(name: "mobilenetv2", family: "cnn", summary: "MobileNetV2 for small images (stride 1 stem), inverted residuals with depthwise convolutions") { shape, classes, generator in
            MobileNetV2(inputChannels: shape[0], classes: classes, generator: &generator)
        },
        vit("vit-tiny", width: 128, depth: 4, heads: 4, mlpWidth: 256),
        vit("vit-small", width: 192, depth: 8, heads: 6, mlpWidth: 384),
        Entry(name: "mixer-tiny", family: "mixer", summary: "MLP-Mixer, patch 4, width 128, depth 4, token MLP 64, channel MLP 256") { shape, classes, generator in
            try checkPatchGrid(shape, patch: 4, model: "mixer-tiny")
            return MLPMixer(architecture: "mixer-tiny", inputChannels: shape[0], imageSize: (shape[1], shape[2]), classes: classes,
                            patchSize: 4, width: 128, depth: 4, tokenMLPWidth: 64, channelMLPWidth: 256, generator: &generator)
        },
    ]

    public static var names: [String] { entries.map(\.name) }

    public static func entry(named name: String) throws -> Entry {
        guard let entry = entries.first(where: { $0.name == name }) else {
            throw UserError("unknown model '\(name)'; valid models: \(names.joined(separator: ", "))")
        }
        return entry
    }

    /// Builds `name` for images of `inputShape` (C, H, W) and `classes` classes.
    public static func make(_ name: String, inputShape: [Int], classes: Int, seed: UInt64) throws -> any ImageClassifier {
        guard inputShape.count == 3, inputShape.allSatisfy({ $0 >= 1 }), classes >= 2 else {
            throw UserError("model '\(name)': input shape \(inputShape) must be (C, H, W) with positive sizes and classes (\(classes)) at least 2")
        }
        var generator = RandomGenerator(seed: seed)
        return try entry(named: name).build(inputShape, classes, &generator)
    }

    private static func resnet(_ name: String, depth: Int, widths: [Int]) -> Entry {
        Entry(name: name, family: "cnn", summary: "CIFAR ResNet, \((depth - 2) / 6) basic blocks per stage, widths \(widths[1...].map(String.init).joined(separator: "/"))") { shape, classes, generator in
            ResNet(architecture: name, depth: depth, widths: widths, inputChannels: shape[0], classes: classes, generator: &generator)
        }
    }

    private static func vit(_ name: String, width: Int, depth: Int, heads: Int, mlpWidth: Int) -> Entry {
        Entry(name: name, family: "vit", summary: "ViT, patch 4, width \(width), depth \(depth), \(heads) heads, MLP \(mlpWidth), class token") { shape, classes, generator in
            try checkPatchGrid(shape, patch: 4, model: name)
            return VisionTransformer(architecture: name, inputChannels: shape[0], imageSize: (shape[1], shape[2]), classes: classes,
                                     patchSize: 4, width: width, depth: depth, heads: heads, mlpWidth: mlpWidth, generator: &generator)
        }
    }

    private static func checkPatchGrid(_ shape: [Int], patch: Int, model: String) throws {
        guard shape[1] % patch == 0 && shape[2] % patch == 0 else {
            throw UserError("model '\(model)' needs an image size divisible by its patch size \(patch); the dataset gives \(shape[1])x\(shape[2])")
        }
    }

    /// The taps a model gives for one image of `inputShape`: shape and layout of each.
    public static func describeTaps(_ model: any ImageClassifier, inputShape: [Int]) -> [(shape: [Int], layout: TapLayout)] {
        let wasTraining = model.isTraining
        model.eval()
        defer { model.train(wasTraining) }
        return withNoGrad {
            model.forward(Tensor(zeros: [1] + inputShape)).taps.map { ($0.tensor.shape, $0.layout) }
        }
    }
}
