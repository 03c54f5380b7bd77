import Data
import Foundation
import Layers
import Models
import Settings
import Tensors

/// What a `model.safetensors` says about the model it holds, so it can be rebuilt and checked
/// against a dataset without the run's config.
public struct ModelDescription: Equatable, Sendable {
    public var architecture: String
    /// The constructor's keyword arguments (none for most models).
    public var arguments = ModelArguments()
    public var dataset: String
    public var classes: Int
    public var inputShape: [Int]
    public var mean: [Float]
    public var std: [Float]
    /// Class names in label order (an image folder's class folders), where the dataset has them.
    public var classNames: [String]?

    public init(
        architecture: String, arguments: ModelArguments = ModelArguments(), dataset: String, classes: Int,
        inputShape: [Int], mean: [Float], std: [Float]
    ) {
        self.architecture = architecture
        self.arguments = arguments
        self.dataset = dataset
        self.classes = classes
        self.inputShape = inputShape
        self.mean = mean
        self.std = std
    }

    public static let formatVersionKey = "sfkd_format_version"

    static let argumentsKey = "sfkd_model_args"

    static let classNamesKey = "sfkd_class_names"

    var metadata: [String: String] {
        var fields = [
            "format": "pt", Self.formatVersionKey: String(FileFormat.version), "sfkd_architecture": architecture,
            "sfkd_dataset": dataset, "sfkd_classes": String(classes),
            "sfkd_input_shape": inputShape.map(String.init).joined(separator: ","),
            "sfkd_mean": mean.map { String($0) }.joined(separator: ","),
            "sfkd_std": std.map { String($0) }.joined(separator: ","),
        ]
        if !arguments.isEmpty { fields[Self.argumentsKey] = arguments.text }
        if let classNames, let json = try? JSONSerialization.data(withJSONObject: classNames) {
            fields[Self.classNamesKey] = String(decoding: json, as: UTF8.self)
        }
        return fields
    }

    init(metadata: [String: String], path: String) throws {
        func field(_ key: String) throws -> String {
            guard let value = metadata[key] else {
                throw UserError(
                    "\(path): metadata field '\(key)' is missing; not a model written by sfkd train (a timm/PyTorch state dict is imported with: sfkd import WEIGHTS --model NAME --out FILE)"
                )
            }
            return value
        }
        func numbers<T: LosslessStringConvertible>(_ key: String) throws -> [T] {
            let values = try field(key).split(separator: ",").map { T(String($0)) }
            guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else {
                throw UserError("\(path): metadata field '\(key)' is not a list of numbers")
            }
            return values.map { $0! }
        }
        if let version = metadata[Self.formatVersionKey] {
            guard let number = Int(version) else {
                throw UserError("\(path): metadata field '\(Self.formatVersionKey)' is not an integer: '\(version)'")
            }
            try FileFormat.check(number, file: path)
        }
        architecture = try field("sfkd_architecture")
        do {
            arguments = try ModelArguments(metadata[Self.argumentsKey] ?? "")
        } catch {
            throw UserError("\(path): metadata field '\(Self.argumentsKey)': \(error)")
        }
        dataset = try field("sfkd_dataset")
        guard let classes = Int(try field("sfkd_classes")) else {
            throw UserError("\(path): metadata field 'sfkd_classes' is not an integer")
        }
        self.classes = classes
        inputShape = try numbers("sfkd_input_shape")
        mean = try numbers("sfkd_mean")
        std = try numbers("sfkd_std")
        if let text = metadata[Self.classNamesKey] {
            guard let names = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String],
                names.count == classes
            else {
                throw UserError(
                    "\(path): metadata field '\(Self.classNamesKey)' is not a JSON list of \(classes) class names")
            }
            classNames = names
        }
        // Sizes and statistics from a file are checked before anything is built from them.
        try validate(path: path)
    }

    /// Checks class count, input shape and normalisation: what a model file may say.
    func validate(path: String) throws {
        guard (2...100_000).contains(classes) else {
            throw UserError("\(path): metadata field 'sfkd_classes' is \(classes); expected 2 to 100000")
        }
        guard inputShape.count == 3, inputShape.allSatisfy({ (1...8192).contains($0) }), inputShape[0] <= 64 else {
            throw UserError(
                "\(path): metadata field 'sfkd_input_shape' is \(inputShape); expected C,H,W with C in 1...64 and H, W in 1...8192"
            )
        }
        guard mean.count == inputShape[0], std.count == inputShape[0] else {
            throw UserError(
                "\(path): metadata fields 'sfkd_mean' and 'sfkd_std' give \(mean.count) and \(std.count) values; expected one per channel (\(inputShape[0]))"
            )
        }
        guard mean.allSatisfy(\.isFinite), std.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw UserError(
                "\(path): metadata field 'sfkd_mean' \(mean) or 'sfkd_std' \(std) is not finite, or a std is not positive"
            )
        }
    }
}

public enum ModelFile {
    /// Saves parameters and buffers (PyTorch state-dict names) with the description as metadata.
    public static func save(_ model: any ImageClassifier, description: ModelDescription, to path: String) throws {
        try SafeTensors.write(model.stateDict(), metadata: description.metadata, to: path)
    }

    /// Copies every tensor of `contents` into `module`'s state, after checking that names and
    /// shapes match exactly; otherwise lists what differs.
    public static func load(_ contents: SafeTensors.Contents, into module: any Module, path: String) throws {
        let state = module.stateDict()
        var problems: [String] = []
        for (name, tensor) in state {
            guard let saved = contents.tensors[name] else {
                problems.append("missing \(name) \(tensor.shape)")
                continue
            }
            if saved.shape != tensor.shape { problems.append("\(name): file \(saved.shape), model \(tensor.shape)") }
        }
        let expected = Set(state.map(\.0))
        for name in contents.names where !expected.contains(name) {
            problems.append("unexpected \(name) \(contents.tensors[name]!.shape)")
        }
        guard problems.isEmpty else {
            let shown = problems.prefix(12).joined(separator: "; ")
            throw UserError(
                "\(path) does not match the model: \(problems.count) tensor(s) differ: \(shown)\(problems.count > 12 ? "; ..." : "")"
            )
        }
        for (name, tensor) in state { tensor.copyValues(from: contents.tensors[name]!) }
    }

    /// Rebuilds the model a `model.safetensors` (or a checkpoint folder holding one) describes.
    /// The model file `path` names: itself, or the `model.safetensors` of a checkpoint folder.
    static func locate(_ path: String, what: String = "checkpoint") throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw UserError("\(what) \(path) not found")
        }
        return isDirectory.boolValue ? (path as NSString).appendingPathComponent("model.safetensors") : path
    }

    public static func open(_ path: String) throws -> (
        model: any ImageClassifier, description: ModelDescription, file: String
    ) {
        let file = try locate(path)
        let contents = try SafeTensors.read(file)
        let description = try ModelDescription(metadata: contents.metadata, path: file)
        let model = try ModelRegistry.make(
            description.architecture, inputShape: description.inputShape, classes: description.classes, seed: 0,
            arguments: description.arguments)
        try load(contents, into: model, path: file)
        return (model, description, file)
    }
}
