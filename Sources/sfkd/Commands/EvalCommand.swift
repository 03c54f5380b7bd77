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
    @Option(
        help:
            "fp32, or bf16 (bfloat16 autocast, as --precision of train), which also reports how many top-1 predictions agree with fp32's."
    ) var precision = "fp32"
    @Flag(help: "Print one JSON object on stdout.") var json = false

    struct Report: Encodable {
        let model: String, dataset: String, checkpoint: String, samples: Int, top1: Double, top5: Double, loss: Double
        let precision: Precision
        /// At bf16: the share of test images whose top-1 class is the one fp32 predicts.
        let agreementWithFloat32: Double?
        enum CodingKeys: String, CodingKey {
            case model, dataset, checkpoint, samples, top1, top5, loss, precision
            case agreementWithFloat32 = "agreement_with_fp32"
        }
    }

    func run() throws {
        let settings = try SettingFlags.config([
            ("dataset", dataset), ("data_dir", dataDirectory), ("val_dir", valDirectory), ("crop_pct", cropPercent),
            ("eval_batch_size", batchSize), ("threads", threads), ("precision", precision),
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
            what: file, precision: settings.precision)
        var agreement: Double? = nil
        if settings.precision != .float32 {
            let ours = try Evaluation.predictions(
                model, on: splits.test, mean: description.mean, std: description.std,
                batchSize: settings.evalBatchSize, precision: settings.precision)
            let float32 = try Evaluation.predictions(
                model, on: splits.test, mean: description.mean, std: description.std,
                batchSize: settings.evalBatchSize, precision: .float32)
            agreement = Double(zip(ours, float32).filter { $0 == $1 }.count) / Double(max(1, ours.count))
        }
        if json {
            try printJSON(
                Report(
                    model: description.architecture, dataset: splits.name, checkpoint: file, samples: result.samples,
                    top1: result.top1, top5: result.top5, loss: result.loss, precision: settings.precision,
                    agreementWithFloat32: agreement))
        } else {
            print(
                "\(description.architecture) on \(splits.name) (\(result.samples) test images): top-1 \(String(format: "%.2f", 100 * result.top1))%, top-5 \(String(format: "%.2f", 100 * result.top5))%, loss \(String(format: "%.4f", result.loss))"
            )
            if let agreement {
                print(
                    "at \(settings.precision.rawValue) (\(BFloat16Arithmetic.effective.rawValue)): top-1 agrees with fp32 on \(String(format: "%.2f", 100 * agreement))% of the test images"
                )
            }
        }
    }
}
