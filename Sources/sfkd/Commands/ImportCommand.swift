import ArgumentParser
import Foundation
import ModelFiles
import Models
import Settings
import Tensors
import Training

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract:
            "Turn a timm/PyTorch state dict in safetensors into an sfkd model file (usable as --teacher and by eval).",
        discussion: """
            WEIGHTS is a state dict as timm, the Hugging Face hub or safetensors.torch.save_file write it (a `module.` \
            prefix from DistributedDataParallel is stripped). Older layouts are converted as timm's checkpoint_filter_fn \
            converts them (Swin before timm 0.9, facebookresearch ConvNeXt and ResMLP, early linear ViT patch embeddings), and a \
            position embedding for another input size is resampled. Every tensor's name and shape is checked against the model; \
            what is missing, unexpected or mis-shaped is listed. A PyTorch .pth converts in three lines of Python: \
            import torch; from safetensors.torch import save_file; \
            save_file({k: v.contiguous() for k, v in torch.load('model.pth', map_location='cpu').items()}, 'model.safetensors')
            """
    )

    @Argument(help: "The weights (.safetensors).") var weights: String
    @Option(help: SettingFlags.help("model")) var model: String
    @Option(name: .customLong("model-args"), help: SettingFlags.help("model_args")) var modelArgs: String = ""
    @Option(help: "Class count (default: from the classifier's weight).") var classes: Int?
    @Option(help: "Input shape C,H,W the model is for.") var input: String = "3,224,224"
    @Option(help: "Normalisation mean per channel (default: that of timm's pretrained weights for the model).")
    var mean: String?
    @Option(help: "Normalisation std per channel (default: that of timm's pretrained weights for the model).") var std:
        String?
    @Option(help: "The dataset the weights are for (a distillation run refuses a teacher of another).") var dataset:
        String = "imagenet"
    @Option(help: "The sfkd model file to write.") var out: String

    func run() throws {
        let settings = try SettingFlags.config([("model", model), ("model_args", modelArgs)])
        var job = ModelImport(weights: weights, model: settings.model)
        job.arguments = try ModelArguments(settings.modelArguments)
        job.dataset = dataset
        job.inputShape = try numbers(input, flag: "--input", as: Int.self)
        guard job.inputShape.count == 3, job.inputShape.allSatisfy({ (1...8192).contains($0) }) else {
            throw UserError("--input '\(input)': expected C,H,W with each in 1...8192")
        }
        if let classes {
            guard (2...100_000).contains(classes) else { throw UserError("--classes \(classes): expected 2 to 100000") }
            job.classes = classes
        }
        if let mean { job.mean = try numbers(mean, flag: "--mean", as: Float.self) }
        if let std { job.std = try numbers(std, flag: "--std", as: Float.self) }
        let result = try job.write(to: out)
        let description = result.description
        for note in result.notes { report("\(weights): \(note)") }
        report(
            "\(weights) -> \(out): \(model)\(job.arguments.isEmpty ? "" : " (\(job.arguments.text))") for \(description.classes) classes, input \(description.inputShape), mean \(description.mean), std \(description.std), dataset '\(description.dataset)'"
        )
    }

    private func numbers<T: LosslessStringConvertible>(_ text: String, flag: String, as: T.Type) throws -> [T] {
        let values = text.split(separator: ",").map { T(String($0.trimmingCharacters(in: .whitespaces))) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else {
            throw UserError("\(flag) '\(text)': expected comma-separated numbers")
        }
        return values.map { $0! }
    }
}
