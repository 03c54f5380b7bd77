import Tensors

/// One split of an image classification dataset: uint8 CHW images held in memory, or image
/// files decoded when a batch needs them. With a `pipeline`, samples are brought to its size
/// by timm's transforms; without one, in-memory images are used at their own size.
public struct ImageDataset: Sendable {
    public let name: String
    /// (C, H, W) of the images held in memory.
    public let storedShape: [Int]
    public let classes: Int
    /// count * C * H * W bytes, image after image, channel-major (CHW); empty for files.
    public let pixels: [UInt8]
    public let labels: [Int32]
    /// The image files, for a dataset that is not held in memory.
    public let files: ImageFiles?
    public private(set) var pipeline: ImagePipeline?
    /// Class names in label order, where the dataset has them.
    public var classNames: [String]? { files?.folder.classNames }

    /// (C, H, W) of the samples a batch holds.
    public var shape: [Int] {
        guard let pipeline else { return storedShape }
        return [files == nil ? storedShape[0] : 3, pipeline.size, pipeline.size]
    }
    public var count: Int { labels.count }
    public var imageSize: Int { shape.reduce(1, *) }

    public init(name: String, shape: [Int], classes: Int, pixels: [UInt8], labels: [Int32]) {
        ensure(
            pixels.count == labels.count * shape.reduce(1, *),
            "ImageDataset \(name): \(pixels.count) bytes for \(labels.count) images of \(shape)")
        self.name = name
        storedShape = shape
        self.classes = classes
        self.pixels = pixels
        self.labels = labels
        files = nil
    }

    /// A split of image files; they vary in size, so a pipeline brings them to one.
    public init(name: String, files: ImageFiles, pipeline: ImagePipeline) {
        self.name = name
        storedShape = []
        classes = files.folder.classNames.count
        pixels = []
        labels = files.folder.labels
        self.files = files
        self.pipeline = pipeline
    }

    /// The same images brought to `pipeline`'s size by its transforms.
    public func with(_ pipeline: ImagePipeline) -> ImageDataset {
        var copy = self
        copy.pipeline = pipeline
        return copy
    }

    /// Image `index` at its own size, channels last.
    func image(at index: Int) throws -> PixelImage {
        if let files { return try files.image(at: index, minimumShortSide: pipeline?.size) }
        let c = storedShape[0], plane = storedShape[1] * storedShape[2]
        var hwc = [UInt8](repeating: 0, count: c * plane)
        pixels.withUnsafeBufferPointer { source in
            let base = index * c * plane
            for p in 0..<plane { for k in 0..<c { hwc[p * c + k] = source[base + k * plane + p] } }
        }
        return PixelImage(width: storedShape[2], height: storedShape[1], channels: c, pixels: hwc)
    }

    /// Per-channel mean and standard deviation of the pixels scaled to [0, 1].
    public func channelStatistics() -> (mean: [Float], std: [Float]) {
        let channels = storedShape[0], plane = storedShape[1] * storedShape[2]
        var sums = [Double](repeating: 0, count: channels), squares = [Double](repeating: 0, count: channels)
        pixels.withUnsafeBufferPointer { p in
            for i in 0..<count {
                for c in 0..<channels {
                    let base = i * channels * plane + c * plane
                    var s = 0, ss = 0
                    for k in 0..<plane {
                        let v = Int(p[base + k])
                        s += v
                        ss += v * v
                    }
                    sums[c] += Double(s)
                    squares[c] += Double(ss)
                }
            }
        }
        let n = Double(count * plane)
        let mean = sums.map { $0 / n / 255 }
        let std = zip(squares, mean).map { max(1e-6, ($0 / n / (255 * 255) - $1 * $1).squareRoot()) }
        return (mean.map(Float.init), std.map(Float.init))
    }
}

/// Train and test splits (and a validation split held out of train) with the normalisation
/// every image gets.
public struct DatasetSplits: Sendable {
    public let train: ImageDataset
    public let test: ImageDataset
    /// Images held out of the training split (`ValidationSplit`), when the run asked for them.
    public let validation: ImageDataset?
    public let mean: [Float]
    public let std: [Float]
    /// Augmentation that suits this dataset when the user asks for none in particular.
    public let defaultAugmentation: Augmentation

    public init(
        train: ImageDataset, test: ImageDataset, validation: ImageDataset? = nil, mean: [Float], std: [Float],
        defaultAugmentation: Augmentation
    ) {
        self.train = train
        self.test = test
        self.validation = validation
        self.mean = mean
        self.std = std
        self.defaultAugmentation = defaultAugmentation
    }

    /// Every split brought to `pipeline`'s size by its transforms.
    public func with(_ pipeline: ImagePipeline) -> DatasetSplits {
        DatasetSplits(
            train: train.with(pipeline), test: test.with(pipeline), validation: validation?.with(pipeline), mean: mean,
            std: std,
            defaultAugmentation: defaultAugmentation)
    }

    /// The same splits normalised with `mean` and `std`.
    public func normalized(mean: [Float], std: [Float]) -> DatasetSplits {
        DatasetSplits(
            train: train, test: test, validation: validation, mean: mean, std: std,
            defaultAugmentation: defaultAugmentation)
    }

    /// `count` training images held out as the validation split (stratified, seeded).
    public func holdingOut(_ count: Int, seed: UInt64) -> DatasetSplits {
        let (kept, held) = ValidationSplit.indices(
            labels: train.labels, classes: train.classes, count: count, seed: seed)
        return DatasetSplits(
            train: train.subset(kept), test: test, validation: train.subset(held), mean: mean, std: std,
            defaultAugmentation: defaultAugmentation)
    }

    public var name: String { train.name }
    public var shape: [Int] { train.shape }
    public var classes: Int { train.classes }
}
