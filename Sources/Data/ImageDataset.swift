import Tensors

/// One split of an image classification dataset: uint8 CHW images held in memory, or image
/// files decoded when a batch needs them.
public struct ImageDataset: Sendable {
    public let name: String
    /// (C, H, W)
    public let shape: [Int]
    public let classes: Int
    /// count * C * H * W bytes, image after image, channel-major (CHW); empty for files.
    public let pixels: [UInt8]
    public let labels: [Int32]
    /// The image files, for a dataset that is not held in memory.
    public let files: ImageFiles?
    /// Class names in label order, where the dataset has them.
    public var classNames: [String]? { files?.folder.classNames }

    public var count: Int { labels.count }
    public var imageSize: Int { shape.reduce(1, *) }

    public init(name: String, shape: [Int], classes: Int, pixels: [UInt8], labels: [Int32]) {
        ensure(pixels.count == labels.count * shape.reduce(1, *), "ImageDataset \(name): \(pixels.count) bytes for \(labels.count) images of \(shape)")
        self.name = name
        self.shape = shape
        self.classes = classes
        self.pixels = pixels
        self.labels = labels
        self.files = nil
    }

    /// A split of image files, brought to 3 x size x size.
    public init(name: String, files: ImageFiles) {
        self.name = name
        shape = [3, files.size, files.size]
        classes = files.folder.classNames.count
        pixels = []
        labels = files.folder.labels
        self.files = files
    }

    /// Per-channel mean and standard deviation of the pixels scaled to [0, 1].
    public func channelStatistics() -> (mean: [Float], std: [Float]) {
        let channels = shape[0], plane = shape[1] * shape[2]
        var sums = [Double](repeating: 0, count: channels), squares = [Double](repeating: 0, count: channels)
        pixels.withUnsafeBufferPointer { p in
            for i in 0..<count {
                for c in 0..<channels {
                    let base = i * channels * plane + c * plane
                    var s = 0, ss = 0
                    for k in 0..<plane { let v = Int(p[base + k]); s += v; ss += v * v }
                    sums[c] += Double(s); squares[c] += Double(ss)
                }
            }
        }
        let n = Double(count * plane)
        let mean = sums.map { $0 / n / 255 }
        let std = zip(squares, mean).map { max(1e-6, ($0 / n / (255 * 255) - $1 * $1).squareRoot()) }
        return (mean.map(Float.init), std.map(Float.init))
    }
}

/// Train and test splits with the normalisation every image gets.
public struct DatasetSplits: Sendable {
    public let train: ImageDataset
    public let test: ImageDataset
    public let mean: [Float]
    public let std: [Float]
    /// Augmentation that suits this dataset when the user asks for none in particular.
    public let defaultAugmentation: Augmentation

    public init(train: ImageDataset, test: ImageDataset, mean: [Float], std: [Float], defaultAugmentation: Augmentation) {
        self.train = train
        self.test = test
        self.mean = mean
        self.std = std
        self.defaultAugmentation = defaultAugmentation
    }

    public var name: String { train.name }
    public var shape: [Int] { train.shape }
    public var classes: Int { train.classes }
}
