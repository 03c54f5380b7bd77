import ArgumentParser
import Data
import Foundation
import ModelFiles
import Settings
import Tensors
import Training

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a model.safetensors (or a checkpoint folder) on a dataset's test split: top-1, top-5, loss."
    )

    @Option(help: "model.safetensors written by sfkd train, or a checkpoints/step-N folder.") var checkpoint: String
    @Option(help: SettingFlags.help("dataset")) var dataset: String
    @Option(name: .customLong("data-dir"), help: SettingFlags.help("data_dir")) var dataDirectory: String?
    @Option(name: .customLong("val-dir"), help: SettingFlags.help("val_dir")) var valDirectory: String?
    @Option(name: .customLong("crop-pct"), help: SettingFlags.help("crop_pct", tableDefault: true)) var cropPercent:
        String?
    @Option(name: .customLong("eval-batch-size"), help: SettingFlags.help("eval_batch_size")) var batchSize: String =
        "500"
    @Option(help: SettingFlags.help("threads")) var threads: String?
    @Flag(help: "Print one JSON object on stdout.") var json = false

    struct Report: Encodable {
        let model: String, dataset: String, checkpoint: String, samples: Int, top1: Double, top5: Double, loss: Double
    }

    func run() throws {
        let settings = try SettingFlags.config([
            ("dataset", dataset), ("data_dir", dataDirectory), ("val_dir", valDirectory), ("crop_pct", cropPercent),
            ("eval_batch_size", batchSize), ("threads", threads),
        ])
        if let threads = settings.threads { Threads.configure(threads) }
        let (model, description, file) = try ModelFile.open(checkpoint)
        // An image folder is brought to the size the model was trained at.
        var folder = DatasetRegistry.FolderOptions()
        folder.valDirectory = settings.valDirectory
        folder.pipeline = ImagePipeline(size: description.inputShape[1])
        folder.pipeline.cropPercent = settings.cropPercent
        let splits = try DatasetRegistry.load(settings.dataset, directory: settings.dataDirectory, folder: folder)
        try description.checkCompatible(with: splits, path: file)
        let result = try Evaluation.run(
            model, on: splits.test, mean: description.mean, std: description.std, batchSize: settings.evalBatchSize,
            what: file)
        if json {
            try printJSON(
                Report(
                    model: description.architecture, dataset: splits.name, checkpoint: file, samples: result.samples,
                    top1: result.top1, top5: result.top5, loss: result.loss))
        } else {
            print(
                "\(description.architecture) on \(splits.name) (\(result.samples) test images): top-1 \(String(format: "%.2f", 100 * result.top1))%, top-5 \(String(format: "%.2f", 100 * result.top5))%, loss \(String(format: "%.4f", result.loss))"
            )
        }
    }
}
