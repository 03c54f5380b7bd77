import Foundation
import Layers
import Settings
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
        let build:
            @Sendable (
                _ inputShape: [Int], _ classes: Int, _ arguments: ModelArguments, _ generator: inout RandomGenerator
            ) throws -> any ImageClassifier

        init(
            name: String, family: String, summary: String, arguments: [String] = [], classifier: String = "fc",
            build:
                @escaping @Sendable (
                    _ inputShape: [Int], _ classes: Int, _ arguments: ModelArguments, _ generator: inout RandomGenerator
                ) throws -> any ImageClassifier
        ) {
            self.name = name
            self.family = family
            self.summary = summary
            self.arguments = arguments
            self.classifier = classifier
            self.build = build
        }

        /// The parameter count the model's arguments ask for, worked out without building it, for
        /// families whose size the arguments set (the others have fixed sizes): `make` refuses a
        /// model the machine cannot hold before allocating it.
        public var parameterEstimate:
            (@Sendable (_ inputShape: [Int], _ classes: Int, _ arguments: ModelArguments) throws -> Double)?

        /// This entry with an estimate of its parameter count.
        func estimating(
            _ estimate:
                @escaping @Sendable (_ inputShape: [Int], _ classes: Int, _ arguments: ModelArguments) throws -> Double
        ) -> Entry {
            var entry = self
            entry.parameterEstimate = estimate
            return entry
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
        init(
            name: String, family: String, summary: String, classifier: String = "fc",
            build:
                @escaping @Sendable (_ inputShape: [Int], _ classes: Int, _ generator: inout RandomGenerator) throws ->
                any ImageClassifier
        ) {
            self.init(name: name, family: family, summary: summary, classifier: classifier) {
                shape, classes, _, generator in
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

    /// Every model; each family's entries sit next to its code (`ResNet.swift`, ...).
    public static let entries: [Entry] =
        cifarResNets + cifarMobileNets + visionTransformers + convNeXts + swinTransformers + mlpModels + timmMobileNets
        + timmResNets

    public static var names: [String] { entries.map(\.name) }

    public static func entry(named name: String) throws -> Entry {
        guard let entry = entries.first(where: { $0.name == name }) else {
            throw UserError("unknown model '\(name)'; valid models: \(names.joined(separator: ", "))")
        }
        return entry
    }

    /// Builds `name` for images of `inputShape` (C, H, W) and `classes` classes, with `arguments`
    /// as `timm.create_model(name, **arguments)` takes them.
    public static func make(
        _ name: String, inputShape: [Int], classes: Int, seed: UInt64, arguments: ModelArguments = ModelArguments()
    ) throws -> any ImageClassifier {
        guard inputShape.count == 3, inputShape.allSatisfy({ $0 >= 1 }), classes >= 2 else {
            throw UserError(
                "model '\(name)': input shape \(inputShape) must be (C, H, W) with positive sizes and classes (\(classes)) at least 2"
            )
        }
        let entry = try entry(named: name)
        try arguments.check(accepted: entry.arguments, model: name)
        if let estimate = try entry.parameterEstimate?(inputShape, classes, arguments) {
            try checkFits(parameters: estimate, model: name, arguments: arguments)
        }
        var generator = RandomGenerator(seed: seed)
        return try entry.build(inputShape, classes, arguments, &generator)
    }

    /// timm's `img_size`: sfkd builds token models for the input, so a given size must be the input's.
    static func checkImageSize(_ arguments: ModelArguments, _ shape: [Int], model: String) throws {
        if let size = try arguments.integers("img_size", default: [], range: 1...8192).first,
            size != shape[1] || size != shape[2]
        {
            throw UserError(
                "model '\(model)': img_size \(size) but the input is \(shape[1])x\(shape[2]); img_size must be the input's size"
            )
        }
    }

    static func checkPatchGrid(_ shape: [Int], patch: Int, model: String) throws {
        guard shape[1] % patch == 0 && shape[2] % patch == 0 else {
            throw UserError(
                "model '\(model)' needs an image size divisible by its patch size \(patch); the dataset gives \(shape[1])x\(shape[2])"
            )
        }
    }

    /// Refuses a model whose float32 weights alone would not fit in this machine's memory.
    static func checkFits(parameters: Double, model: String, arguments: ModelArguments) throws {
        let memory = MachineMemory.bytes
        let weights = 4 * parameters
        guard weights > Double(memory) else { return }
        throw UserError(
            "model '\(model)' with \(arguments.text) has about \(formatCount(parameters)) parameters: \(formatBytes(weights)) of float32 weights "
                + "(about \(formatBytes(4 * weights)) to train, with gradients and optimizer state), and this machine has "
                + "\(formatBytes(Double(memory))) of memory; choose smaller arguments")
    }

    /// The taps a model gives for one image of `inputShape`: shape and layout of each.
    public static func describeTaps(_ model: any ImageClassifier, inputShape: [Int]) -> [(
        shape: [Int], layout: TapLayout
    )] {
        let wasTraining = model.isTraining
        model.eval()
        defer { model.train(wasTraining) }
        return withNoGrad {
            model.forward(Tensor(zeros: [1] + inputShape)).taps.map { ($0.tensor.shape, $0.layout) }
        }
    }
}

/// This machine's physical memory.
public enum MachineMemory {
    public static var bytes: Int { sysconf(Int32(_SC_PHYS_PAGES)) * sysconf(Int32(_SC_PAGESIZE)) }
}

/// "12.9 G", "531 M", "4.2 k".
func formatCount(_ count: Double) -> String {
    for (limit, suffix) in [(1e9, "G"), (1e6, "M"), (1e3, "k")] where count >= limit {
        return "\(String(format: "%.1f", count / limit)) \(suffix)"
    }
    return String(format: "%.0f", count)
}

/// "51.5 GB", "24.0 GB".
func formatBytes(_ bytes: Double) -> String {
    for (limit, suffix) in [(1e12, "TB"), (1e9, "GB"), (1e6, "MB")] where bytes >= limit {
        return "\(String(format: "%.1f", bytes / limit)) \(suffix)"
    }
    return String(format: "%.0f bytes", bytes)
}
