import Foundation
import Models
import Tensors

/// `--init FILE`: a training run that starts from the weights of an sfkd model file (written by
/// `sfkd train` or `sfkd import`) instead of a random initialisation, as one fine-tunes an
/// ImageNet model on CIFAR-100. The classifier may change class count with `--reset-head`
/// (it then keeps its fresh initialisation); a position embedding made for another input size
/// is resampled; any other difference is refused with the list.
enum WeightInitialization {
    static func apply(to student: any ImageClassifier, from path: String, resetHead: Bool, arguments: ModelArguments, inputShape: [Int]) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw UserError("--init \(path) not found") }
        let file = isDirectory.boolValue ? (path as NSString).appendingPathComponent("model.safetensors") : path
        let contents = try SafeTensors.read(file)
        let description = try ModelDescription(metadata: contents.metadata, path: file)
        guard description.architecture == student.architecture, description.arguments == arguments else {
            throw UserError("--init \(file) holds \(description.architecture)\(description.arguments.isEmpty ? "" : " (\(description.arguments.text))"); this run trains \(student.architecture)\(arguments.isEmpty ? "" : " (\(arguments.text))")")
        }
        let head = try ModelRegistry.entry(named: student.architecture).classifier + "."
        var problems: [String] = []
        var copies: [(Tensor, Tensor)] = []
        for (name, tensor) in student.stateDict() {
            guard let saved = contents.tensors[name] else { problems.append("missing \(name) \(tensor.shape)"); continue }
            if name.hasPrefix(head) && (resetHead || saved.shape != tensor.shape) {
                if !resetHead { problems.append("\(name): file \(saved.shape), model \(tensor.shape) (another class count: pass --reset-head to start a new classifier)") }
                continue
            }
            if saved.shape == tensor.shape {
                copies.append((tensor, saved))
            } else if name == "pos_embed", let grid = tokenGrid(student, inputShape: inputShape), saved.rank == 3, saved.shape[2] == tensor.shape[2],
                      let old = squareGrid(saved.shape[1] - grid.prefix) {
                copies.append((tensor, PositionEmbeddingResampling.resample(saved, prefixTokens: grid.prefix, from: (old, old), to: (grid.height, grid.width))))
            } else {
                problems.append("\(name): file \(saved.shape), model \(tensor.shape)")
            }
        }
        guard problems.isEmpty else {
            throw UserError("--init \(file) does not fit the model: \(problems.prefix(12).joined(separator: "; "))\(problems.count > 12 ? "; ..." : "")")
        }
        for (tensor, saved) in copies { tensor.copyValues(from: saved) }
    }

    private static func tokenGrid(_ model: any ImageClassifier, inputShape: [Int]) -> (prefix: Int, height: Int, width: Int)? {
        guard case let .tokens(prefix, h, w)? = ModelRegistry.describeTaps(model, inputShape: inputShape).first?.layout else { return nil }
        return (prefix, h, w)
    }

    private static func squareGrid(_ tokens: Int) -> Int? {
        let side = Int(Double(tokens).squareRoot().rounded())
        return side * side == tokens ? side : nil
    }
}
