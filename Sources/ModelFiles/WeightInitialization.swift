import Foundation
import Models
import Settings
import Tensors

/// `--init FILE`: a training run that starts from the weights of an sfkd model file (written by
/// `sfkd train` or `sfkd import`) instead of a random initialisation, as one fine-tunes an
/// ImageNet model on CIFAR-100. The classifier may change class count with `--reset-head`
/// (it then keeps its fresh initialisation); a position embedding made for another input size
/// is resampled; any other difference is refused with the list.
public enum WeightInitialization {
    public static func apply(
        to student: any ImageClassifier, from path: String, resetHead: Bool, arguments: ModelArguments,
        inputShape: [Int]
    ) throws {
        let file = try ModelFile.locate(path, what: "--init")
        let contents = try SafeTensors.read(file)
        let description = try ModelDescription(metadata: contents.metadata, path: file)
        guard description.architecture == student.architecture, description.arguments == arguments else {
            throw UserError(
                "--init \(file) holds \(description.architecture)\(description.arguments.isEmpty ? "" : " (\(description.arguments.text))"); this run trains \(student.architecture)\(arguments.isEmpty ? "" : " (\(arguments.text))")"
            )
        }
        let head = try ModelRegistry.entry(named: student.architecture).classifier + "."
        var problems: [String] = []
        var copies: [(Tensor, Tensor)] = []
        for (name, tensor) in student.stateDict() {
            guard let saved = contents.tensors[name] else {
                problems.append("missing \(name) \(tensor.shape)")
                continue
            }
            if name.hasPrefix(head) && (resetHead || saved.shape != tensor.shape) {
                if !resetHead {
                    problems.append(
                        "\(name): file \(saved.shape), model \(tensor.shape) (another class count: pass --reset-head to start a new classifier)"
                    )
                }
                continue
            }
            if saved.shape == tensor.shape {
                copies.append((tensor, saved))
            } else if name == "pos_embed",
                let resampled = PositionEmbeddingResampling.fitted(saved, to: student, inputShape: inputShape)
            {
                copies.append((tensor, resampled))
            } else {
                problems.append("\(name): file \(saved.shape), model \(tensor.shape)")
            }
        }
        guard problems.isEmpty else {
            throw UserError(
                "--init \(file) does not fit the model: \(problems.prefix(12).joined(separator: "; "))\(problems.count > 12 ? "; ..." : "")"
            )
        }
        for (tensor, saved) in copies { tensor.copyValues(from: saved) }
    }
}
