import Foundation
import Models
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
    /// timm's ImageNet normalisation, the pretrained default.
    public var mean: [Float] = [0.485, 0.456, 0.406]
    public var std: [Float] = [0.229, 0.224, 0.225]
    /// The dataset the weights were trained for; a distillation run refuses a teacher of another.
    public var dataset = "imagenet"

    public init(weights: String, model: String) {
        self.weights = weights
        self.model = model
    }

    /// Checks every tensor's name and shape against the model (listing what is missing,
    /// unexpected or mis-shaped) and writes the model file to `output`.
    @discardableResult
    public func write(to output: String) throws -> ModelDescription {
        var contents = try SafeTensors.read(weights)
        // DistributedDataParallel saves every name under `module.`.
        if !contents.names.isEmpty, contents.names.allSatisfy({ $0.hasPrefix("module.") }) {
            let stripped = contents.names.map { String($0.dropFirst(7)) }
            contents = SafeTensors.Contents(tensors: Dictionary(uniqueKeysWithValues: zip(stripped, contents.names.map { contents.tensors[$0]! })),
                                            names: stripped, metadata: contents.metadata)
        }
        let entry = try ModelRegistry.entry(named: model)
        let classifier = entry.classifier + ".weight"
        guard let classes = classes ?? contents.tensors[classifier].map({ $0.shape[0] }) else {
            throw UserError("\(weights): no tensor '\(classifier)' to read the class count from; pass --classes N")
        }
        let description = ModelDescription(architecture: model, arguments: arguments, dataset: dataset, classes: classes,
                                           inputShape: inputShape, mean: mean, std: std)
        try description.validate(path: weights)
        let network = try ModelRegistry.make(model, inputShape: inputShape, classes: classes, seed: 0, arguments: arguments)
        contents = resamplingPositionEmbedding(contents, for: network)
        try ModelFile.load(contents, into: network, path: weights)
        try ModelFile.save(network, description: description, to: output)
        return description
    }

    /// Weights made for another input size carry a position embedding for another patch grid:
    /// resampled to the model's, as timm does.
    private func resamplingPositionEmbedding(_ contents: SafeTensors.Contents, for network: any ImageClassifier) -> SafeTensors.Contents {
        guard let saved = contents.tensors["pos_embed"],
              let resampled = PositionEmbeddingResampling.fitted(saved, to: network, inputShape: inputShape) else { return contents }
        var tensors = contents.tensors
        tensors["pos_embed"] = resampled
        return SafeTensors.Contents(tensors: tensors, names: contents.names, metadata: contents.metadata)
    }
}
