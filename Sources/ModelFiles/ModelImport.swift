import Foundation
import Models
import Settings
import Tensors

/// `sfkd import`: a state dict in safetensors, as timm, the Hugging Face hub and
/// `safetensors.torch.save_file` write it, into an sfkd model file (the same tensors plus the
/// metadata that says what the model is), usable as `--teacher` and by `sfkd eval`.
public struct ModelImport {
    public var weights: String
    public var model: String
    public var arguments = ModelArguments()
    /// nil: read from the classifier's weight.
    public var classes: Int?
    public var inputShape = [3, 224, 224]
    /// nil: the normalisation of timm's pretrained weights for the model (ImageNet's, or 0.5 for ViT and Mixer).
    public var mean: [Float]?
    public var std: [Float]?
    /// The dataset the weights were trained for; a distillation run refuses a teacher of another.
    public var dataset = "imagenet"

    public init(weights: String, model: String) {
        self.weights = weights
        self.model = model
    }

    /// What was written, and how the weights were converted on the way (timm's key remapping
    /// of older checkpoints, DDP's prefix, a resampled position embedding).
    public struct Result {
        public let description: ModelDescription
        public let notes: [String]
    }

    /// Checks every tensor's name and shape against the model (listing what is missing,
    /// unexpected or mis-shaped) and writes the model file to `output`.
    @discardableResult
    public func write(to output: String) throws -> Result {
        var notes: [String] = []
        var contents = try SafeTensors.read(weights)
        // DistributedDataParallel saves every name under `module.`.
        if !contents.names.isEmpty, contents.names.allSatisfy({ $0.hasPrefix("module.") }) {
            let stripped = contents.names.map { String($0.dropFirst(7)) }
            contents = SafeTensors.Contents(
                tensors: Dictionary(uniqueKeysWithValues: zip(stripped, contents.names.map { contents.tensors[$0]! })),
                names: stripped, metadata: contents.metadata)
            notes.append("DistributedDataParallel's 'module.' prefix stripped")
        }
        let entry = try ModelRegistry.entry(named: model)
        let classifier = entry.classifier + ".weight"
        // The names after timm's conversion say where the classifier is; reshapes need the model.
        let renamed = entry.checkpointFilter.apply(contents.names.map { ($0, contents.tensors[$0]!) }, modelShapes: [:])
            .tensors
        guard let classes = classes ?? renamed.first(where: { $0.0 == classifier }).map({ $0.1.shape[0] }) else {
            throw UserError("\(weights): no tensor '\(classifier)' to read the class count from; pass --classes N")
        }
        let description = ModelDescription(
            architecture: model, arguments: arguments, dataset: dataset, classes: classes,
            inputShape: inputShape, mean: mean ?? entry.pretrainedMean, std: std ?? entry.pretrainedStd)
        try description.validate(path: weights)
        let network = try ModelRegistry.make(
            model, inputShape: inputShape, classes: classes, seed: 0, arguments: arguments)
        let modelShapes = Dictionary(uniqueKeysWithValues: network.stateDict().map { ($0.0, $0.1.shape) })
        let filtered = entry.checkpointFilter.apply(
            contents.names.map { ($0, contents.tensors[$0]!) }, modelShapes: modelShapes)
        if let note = filtered.note {
            contents = SafeTensors.Contents(
                tensors: Dictionary(filtered.tensors, uniquingKeysWith: { first, _ in first }),
                names: filtered.tensors.map(\.0), metadata: contents.metadata)
            notes.append(note)
        }
        let resampled = resamplingPositionEmbedding(contents, for: network)
        if let saved = contents.tensors["pos_embed"], let now = resampled.tensors["pos_embed"], saved.shape != now.shape
        {
            notes.append("pos_embed resampled from \(saved.shape) to \(now.shape) (bicubic, antialiased, as timm)")
        }
        try ModelFile.load(resampled, into: network, path: weights)
        try ModelFile.save(network, description: description, to: output)
        return Result(description: description, notes: notes)
    }

    /// Weights made for another input size carry a position embedding for another patch grid:
    /// resampled to the model's, as timm does.
    private func resamplingPositionEmbedding(_ contents: SafeTensors.Contents, for network: any ImageClassifier)
        -> SafeTensors.Contents
    {
        guard let saved = contents.tensors["pos_embed"],
            let resampled = PositionEmbeddingResampling.fitted(saved, to: network, inputShape: inputShape)
        else { return contents }
        var tensors = contents.tensors
        tensors["pos_embed"] = resampled
        return SafeTensors.Contents(tensors: tensors, names: contents.names, metadata: contents.metadata)
    }
}
