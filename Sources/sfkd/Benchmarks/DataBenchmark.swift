import Data
import Foundation
import Tensors

/// `sfkd bench data`: images per second through the input pipeline of an image folder, next
/// to a plain read of the same files, the two alternated round after round: reading the bytes,
/// decoding them, decoding plus timm's training (or evaluation) transforms on one thread, and
/// the loader's worker threads building batches as training does.
struct DataBenchmark {
    let directory: String
    let inputSize: Int
    let images: Int
    let loaderThreads: Int
    let rounds: Int
    let training: Bool
    var randAugment: RandAugment?

    struct Result: Encodable {
        let files: Int, inputSize: Int, loaderThreads: Int, training: Bool, randAugment: String?
        let readImagesPerSecond: Double, decodeImagesPerSecond: Double, pipelineImagesPerSecond: Double
        let loaderImagesPerSecond: Double, loaderImagesPerSecondPerThread: Double

        enum CodingKeys: String, CodingKey {
            case files, training, randAugment = "aa"
            case inputSize = "input_size", loaderThreads = "loader_threads"
            case readImagesPerSecond = "read_images_per_sec", decodeImagesPerSecond = "decode_images_per_sec"
            case pipelineImagesPerSecond = "pipeline_images_per_sec_one_thread"
            case loaderImagesPerSecond = "loader_images_per_sec", loaderImagesPerSecondPerThread =
                "loader_images_per_sec_per_thread"
        }
    }

    func run(progress: (String) -> Void) throws -> Result {
        var options = DatasetRegistry.FolderOptions()
        options.pipeline = ImagePipeline(size: inputSize)
        if let randAugment {
            options.pipeline.randAugment = randAugment
            if !randAugment.keepsColorJitter { options.pipeline.colorJitter = 0 }
        }
        let splits = try DatasetRegistry.load("folder", directory: directory, folder: options)
        let dataset = splits.train
        let paths = dataset.files!.folder.paths
        let count = min(images, paths.count)
        let indices = Array(0..<count)
        let augmentation: Augmentation? = training ? Augmentation() : nil
        func seconds(_ body: () throws -> Void) rethrows -> Double {
            let start = Date()
            try body()
            return Date().timeIntervalSince(start)
        }
        var read: [Double] = [], decode: [Double] = [], pipeline: [Double] = [], loader: [Double] = []
        for round in 0..<rounds {
            read.append(
                Double(count)
                    / seconds {
                        for index in indices { _ = FileManager.default.contents(atPath: paths[index]) }
                    })
            decode.append(
                Double(count)
                    / (try seconds {
                        for index in indices {
                            _ = try ImageDecoder.decode(path: paths[index], minimumShortSide: inputSize)
                        }
                    }))
            pipeline.append(
                Double(count)
                    / (try seconds {
                        for start in stride(from: 0, to: count, by: 32) {
                            _ = try BatchLoader.assemble(
                                dataset, indices: Array(indices[start..<min(count, start + 32)]), mean: splits.mean,
                                std: splits.std,
                                augmentation: augmentation, seed: 0, epoch: round)
                        }
                    }))
            let batches = stride(from: 0, to: count, by: 32).map { Array(indices[$0..<min(count, $0 + 32)]) }
            loader.append(
                Double(count)
                    / (try seconds {
                        let batchLoader = BatchLoader(
                            dataset: dataset, mean: splits.mean, std: splits.std, augmentation: augmentation, seed: 0,
                            epoch: round,
                            batches: batches, threads: loaderThreads)
                        while try batchLoader.next() != nil {}
                    }))
            progress(
                "round \(round + 1): read \(Int(read.last!)) img/s, decode \(Int(decode.last!)) img/s, decode + transforms \(Int(pipeline.last!)) img/s, loader (\(loaderThreads) threads) \(Int(loader.last!)) img/s"
            )
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let result = Result(
            files: count, inputSize: inputSize, loaderThreads: loaderThreads, training: training,
            randAugment: randAugment?.configuration,
            readImagesPerSecond: median(read), decodeImagesPerSecond: median(decode),
            pipelineImagesPerSecond: median(pipeline),
            loaderImagesPerSecond: median(loader),
            loaderImagesPerSecondPerThread: median(loader) / Double(loaderThreads))
        progress(
            "\(count) images of \(directory)/train at \(inputSize) (\(training ? "training" : "evaluation") transforms\(randAugment.map { " with \($0.configuration)" } ?? "")), medians of \(rounds) rounds: read \(Int(result.readImagesPerSecond)) img/s, decode \(Int(result.decodeImagesPerSecond)) img/s, decode + transforms \(Int(result.pipelineImagesPerSecond)) img/s on one thread, loader \(Int(result.loaderImagesPerSecond)) img/s on \(loaderThreads) threads (\(Int(result.loaderImagesPerSecondPerThread)) per thread)"
        )
        return result
    }
}
