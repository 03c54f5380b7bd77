import Layers
import Tensors

/// Every model by name. Input channels, image size and class count come from the dataset.
public enum ModelRegistry {
    public struct Entry: Sendable {
        public let name: String
        public let family: String
        public let summary: String
        /// The keyword arguments it takes (`--model-args`).
        public var arguments: [String] = []
        /// The final Linear layer, whose weight gives the class count of imported weights.
        public var classifier = "fc"
        /// How timm converts older checkpoints of this model (`sfkd import` applies it).
        public var checkpointFilter = CheckpointFilter.none
        /// Normalisation of timm's pretrained weights for this model (its `default_cfg`).
        public var pretrainedMean: [Float] = ImageNetStatistics.mean
        public var pretrainedStd: [Float] = ImageNetStatistics.std
        let build: @Sendable (_ inputShape: [Int], _ classes: Int, _ arguments: ModelArguments, _ generator: inout RandomGenerator) throws -> any ImageClassifier

        init(name: String, family: String, summary: String, arguments: [String] = [], classifier: String = "fc",
             build: @escaping @Sendable (_ inputShape: [Int], _ classes: Int, _ arguments: ModelArguments, _ generator: inout RandomGenerator) throws -> any ImageClassifier) {
            self.name = name
            self.family = family
            self.summary = summary
            self.arguments = arguments
            self.classifier = classifier
            self.build = build
        }

        /// This entry with timm's conversion of older checkpoints.
        func filtering(_ filter: CheckpointFilter) -> Entry {
            var entry = self
            entry.checkpointFilter = filter
            return entry
        }

        /// This entry with the normalisation of timm's pretrained weights.
        func normalised(mean: [Float], std: [Float]) -> Entry {
            var entry = self
            entry.pretrainedMean = mean
            entry.pretrainedStd = std
            return entry
        }

        /// A model that takes no arguments.
        init(name: String, family: String, summary: String, classifier: String = "fc",
             build: @escaping @Sendable (_ inputShape: [Int], _ classes: Int, _ generator: inout RandomGenerator) throws -> any ImageClassifier) {
            self.init(name: name, family: family, summary: summary, classifier: classifier) { shape, classes, _, generator in
                try build(shape, classes, &generator)
            }
        }
    }

    /// timm's `IMAGENET_DEFAULT_MEAN` / `_STD`; ViT (augreg) and Mixer weights use 0.5 instead.
    public enum ImageNetStatistics {
        public static let mean: [Float] = [0.485, 0.456, 0.406]
        public static let std: [Float] = [0.229, 0.224, 0.225]
        static let half: [Float] = [0.5, 0.5, 0.5]
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
        timmViT("deit_tiny_patch16_224", width: 192, depth: 12, heads: 3),
        timmViT("deit_small_patch16_224", width: 384, depth: 12, heads: 6),
        timmViT("vit_small_patch16_224", width: 384, depth: 12, heads: 6).normalised(mean: ImageNetStatistics.half, std: ImageNetStatistics.half),
        Entry(name: "convnext_tiny", family: "cnn", summary: "timm convnext_tiny: 7x7 depthwise blocks 3-3-9-3, widths 96-192-384-768, channels-last LayerNorm, layer scale",
              arguments: ["depths", "dims", "drop_path_rate"], classifier: "head.fc") { shape, classes, arguments, generator in
            let dims = try arguments.integers("dims", default: [96, 192, 384, 768], count: 4)
            guard shape[1] % 32 == 0 && shape[2] % 32 == 0 else {
                throw UserError("model 'convnext_tiny' downsamples by 32 (a 4x4 stem, three 2x2 stages); the input \(shape[1])x\(shape[2]) must be a multiple of 32")
            }
            return ConvNeXt(architecture: "convnext_tiny", depths: try arguments.integers("depths", default: [3, 3, 9, 3], count: 4, range: 1...256), dims: dims,
                            dropPathRate: Float(try arguments.fraction("drop_path_rate")), inputChannels: shape[0], classes: classes, generator: &generator)
        }.filtering(.convnext),
        Entry(name: "swin_tiny_patch4_window7_224", family: "vit",
              summary: "timm swin_tiny_patch4_window7_224: patch 4, window 7, widths 96-768, depths 2-2-6-2, heads 3-6-12-24, shifted windows, relative position bias",
              arguments: ["img_size", "patch_size", "window_size", "embed_dim", "depths", "num_heads", "mlp_ratio", "drop_path_rate"],
              classifier: "head.fc") { shape, classes, arguments, generator in
            try checkImageSize(arguments, shape, model: "swin_tiny_patch4_window7_224")
            let patch = try arguments.integers("patch_size", default: [4], count: 1)[0]
            try checkPatchGrid(shape, patch: patch, model: "swin_tiny_patch4_window7_224")
            let depths = try arguments.integers("depths", default: [2, 2, 6, 2], range: 1...256)
            let heads = try arguments.integers("num_heads", default: [3, 6, 12, 24], count: depths.count, range: 1...1024)
            return try SwinTransformer(architecture: "swin_tiny_patch4_window7_224", inputChannels: shape[0], imageSize: (shape[1], shape[2]), classes: classes,
                                       patchSize: patch, window: try arguments.integers("window_size", default: [7], count: 1)[0],
                                       embedDim: try arguments.integers("embed_dim", default: [96], count: 1)[0], depths: depths, heads: heads,
                                       mlpRatio: try arguments.number("mlp_ratio", default: 4),
                                       dropPathRate: Float(try arguments.fraction("drop_path_rate", default: 0.1)), generator: &generator)
        }.filtering(.swin),
        timmMLP("mixer_b16_224", width: 768, depth: 12, residual: false).normalised(mean: ImageNetStatistics.half, std: ImageNetStatistics.half),
        timmMLP("resmlp_12_224", width: 384, depth: 12, residual: true),
        Entry(name: "mobilenetv2_100", family: "cnn", summary: "timm mobilenetv2_100: inverted residuals (expansion 6, ReLU6), head 1280, stride 32",
              arguments: ["channel_multiplier"], classifier: "classifier") { shape, classes, arguments, generator in
            TimmMobileNetV2(architecture: "mobilenetv2_100", channelMultiplier: try arguments.number("channel_multiplier", default: 1),
                            inputChannels: shape[0], classes: classes, generator: &generator)
        },
        timmResNet("resnet18", block: .basic, layers: [2, 2, 2, 2]),
        timmResNet("resnet34", block: .basic, layers: [3, 4, 6, 3]),
        timmResNet("resnet50", block: .bottleneck, layers: [3, 4, 6, 3]),
        Entry(name: "mixer-tiny", family: "mixer", summary: "MLP-Mixer, patch 4, width 128, depth 4, token MLP 64, channel MLP 256", classifier: "head") { shape, classes, generator in
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

    /// Builds `name` for images of `inputShape` (C, H, W) and `classes` classes, with `arguments`
    /// as `timm.create_model(name, **arguments)` takes them.
    public static func make(_ name: String, inputShape: [Int], classes: Int, seed: UInt64, arguments: ModelArguments = ModelArguments()) throws -> any ImageClassifier {
        guard inputShape.count == 3, inputShape.allSatisfy({ $0 >= 1 }), classes >= 2 else {
            throw UserError("model '\(name)': input shape \(inputShape) must be (C, H, W) with positive sizes and classes (\(classes)) at least 2")
        }
        let entry = try entry(named: name)
        try arguments.check(accepted: entry.arguments, model: name)
        var generator = RandomGenerator(seed: seed)
        return try entry.build(inputShape, classes, arguments, &generator)
    }

    /// timm's VisionTransformer (DeiT and ViT without distillation token): patch 16, MLP ratio 4,
    /// the class token's features to the head; `img_size`, `patch_size`, `embed_dim`, `depth`,
    /// `num_heads`, `mlp_ratio` as timm takes them (`img_size` must be the input's).
    private static func timmViT(_ name: String, width: Int, depth: Int, heads: Int) -> Entry {
        Entry(name: name, family: "vit", summary: "timm \(name): patch 16, width \(width), depth \(depth), \(heads) heads, MLP ratio 4, class token",
              arguments: ["img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "drop_path_rate"], classifier: "head") { shape, classes, arguments, generator in
            try checkImageSize(arguments, shape, model: name)
            let patch = try arguments.integers("patch_size", default: [16], count: 1)[0]
            let embed = try arguments.integers("embed_dim", default: [width], count: 1)[0]
            let numHeads = try arguments.integers("num_heads", default: [heads], count: 1)[0]
            guard embed % numHeads == 0 else { throw UserError("model '\(name)': embed_dim \(embed) is not a multiple of num_heads \(numHeads)") }
            let ratio = try arguments.number("mlp_ratio", default: 4)
            try checkPatchGrid(shape, patch: patch, model: name)
            return VisionTransformer(architecture: name, inputChannels: shape[0], imageSize: (shape[1], shape[2]), classes: classes, patchSize: patch,
                                     width: embed, depth: try arguments.integers("depth", default: [depth], count: 1, range: 1...256)[0], heads: numHeads,
                                     mlpWidth: Int(Double(embed) * ratio), dropPathRate: Float(try arguments.fraction("drop_path_rate")), generator: &generator)
        }.filtering(.visionTransformer)
    }

    /// timm's MLP-Mixer (`mixer_b16_224`: token MLP 0.5x, channel MLP 4x) and ResMLP
    /// (`resmlp_12_224`); `img_size`, `patch_size`, `num_blocks`, `embed_dim` as timm's model
    /// class takes them (timm fixes all but `img_size` for these names; sfkd lets them vary for
    /// small inputs), `drop_path_rate` for ResMLP.
    private static func timmMLP(_ name: String, width: Int, depth: Int, residual: Bool) -> Entry {
        let summary = residual ? "timm \(name): patch 16, width \(width), \(depth) ResMLP blocks (affine norms, cross-patch linear, layer scale)"
            : "timm \(name): patch 16, width \(width), \(depth) mixer blocks, token MLP 0.5x, channel MLP 4x"
        return Entry(name: name, family: "mixer", summary: summary,
                     arguments: ["img_size", "patch_size", "num_blocks", "embed_dim"] + (residual ? ["drop_path_rate"] : []), classifier: "head") { shape, classes, arguments, generator in
            try checkImageSize(arguments, shape, model: name)
            let patch = try arguments.integers("patch_size", default: [16], count: 1)[0]
            let embed = try arguments.integers("embed_dim", default: [width], count: 1)[0]
            let blocks = try arguments.integers("num_blocks", default: [depth], count: 1, range: 1...256)[0]
            try checkPatchGrid(shape, patch: patch, model: name)
            if residual {
                return ResMLP(architecture: name, inputChannels: shape[0], imageSize: (shape[1], shape[2]), classes: classes, patchSize: patch,
                              width: embed, depth: blocks, dropPathRate: Float(try arguments.fraction("drop_path_rate")), generator: &generator)
            }
            return MLPMixer(architecture: name, inputChannels: shape[0], imageSize: (shape[1], shape[2]), classes: classes, patchSize: patch,
                            width: embed, depth: blocks, tokenMLPWidth: embed / 2, channelMLPWidth: 4 * embed, generator: &generator)
        }.filtering(.resmlp)
    }

    /// timm's ResNet family: `layers` and `channels` as timm takes them, `stem=cifar` for 32x32 inputs.
    private static func timmResNet(_ name: String, block: TimmResNet.Block, layers: [Int]) -> Entry {
        let kind = block == .basic ? "basic blocks" : "bottlenecks"
        return Entry(name: name, family: "cnn", summary: "timm \(name): \(kind) \(layers.map(String.init).joined(separator: "-")), widths 64/128/256/512 (stem=cifar: 3x3 stride-1 stem, no max-pool)",
                     arguments: ["layers", "channels", "stem", "drop_path_rate"]) { shape, classes, arguments, generator in
            TimmResNet(architecture: name, block: block, layers: try arguments.integers("layers", default: layers, count: 4, range: 1...64),
                       channels: try arguments.integers("channels", default: [64, 128, 256, 512], count: 4),
                       cifarStem: try arguments.choice("stem", default: "imagenet", options: ["imagenet", "cifar"]) == "cifar",
                       dropPathRate: Float(try arguments.fraction("drop_path_rate")),
                       inputChannels: shape[0], classes: classes, generator: &generator)
        }
    }

    private static func resnet(_ name: String, depth: Int, widths: [Int]) -> Entry {
        Entry(name: name, family: "cnn", summary: "CIFAR ResNet, \((depth - 2) / 6) basic blocks per stage, widths \(widths[1...].map(String.init).joined(separator: "/"))") { shape, classes, generator in
            ResNet(architecture: name, depth: depth, widths: widths, inputChannels: shape[0], classes: classes, generator: &generator)
        }
    }

    private static func vit(_ name: String, width: Int, depth: Int, heads: Int, mlpWidth: Int) -> Entry {
        Entry(name: name, family: "vit", summary: "ViT, patch 4, width \(width), depth \(depth), \(heads) heads, MLP \(mlpWidth), class token", classifier: "head") { shape, classes, generator in
            try checkPatchGrid(shape, patch: 4, model: name)
            return VisionTransformer(architecture: name, inputChannels: shape[0], imageSize: (shape[1], shape[2]), classes: classes,
                                     patchSize: 4, width: width, depth: depth, heads: heads, mlpWidth: mlpWidth, generator: &generator)
        }
    }

    /// timm's `img_size`: sfkd builds token models for the input, so a given size must be the input's.
    private static func checkImageSize(_ arguments: ModelArguments, _ shape: [Int], model: String) throws {
        if let size = try arguments.integers("img_size", default: [], range: 1...8192).first, size != shape[1] || size != shape[2] {
            throw UserError("model '\(model)': img_size \(size) but the input is \(shape[1])x\(shape[2]); img_size must be the input's size")
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
