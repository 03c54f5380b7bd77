import Foundation
import Settings
import Tensors

/// Every dataset by name, with where it is looked for and how it is normalised.
public enum DatasetRegistry {
    public struct Entry: Sendable {
        public let name: String
        public let summary: String
        public let defaultDirectory: String?
    }

    public static let entries: [Entry] = [
        Entry(
            name: "fashion-mnist",
            summary: "Fashion-MNIST, 1x28x28, 10 classes, IDX files (Debian's dataset-fashion-mnist)",
            defaultDirectory: "/usr/share/datasets/fashion-mnist"),
        Entry(name: "mnist", summary: "MNIST or any IDX folder, 1xHxW, 10 classes", defaultDirectory: nil),
        Entry(name: "cifar10", summary: "CIFAR-10 binary version, 3x32x32, 10 classes", defaultDirectory: nil),
        Entry(name: "cifar100", summary: "CIFAR-100 binary version, 3x32x32, 100 fine classes", defaultDirectory: nil),
        Entry(
            name: "npy", summary: "uint8 images (N,H,W[,C]) and integer labels: {train,test}_{images,labels}.npy",
            defaultDirectory: nil),
        Entry(
            name: "folder",
            summary:
                "JPEG/PNG images in torchvision's ImageFolder layout: DIR/train/<class>/*, DIR/val/<class>/* (or --val-dir), decoded at --input-size",
            defaultDirectory: nil),
        Entry(
            name: "synthetic",
            summary: "procedural oriented gratings, 3x32x32, 10 classes, 10000 train / 2000 test, no files",
            defaultDirectory: nil),
    ]

    public static var names: [String] { entries.map(\.name) }

    /// How a `folder` dataset is read: the evaluation split's folder, the transforms that
    /// bring its images to one size, and whether files that do not decode stop the run or are
    /// counted and skipped.
    public struct FolderOptions: Sendable {
        public var valDirectory: String?
        public var pipeline = ImagePipeline(size: 224)
        public var skipBadImages = false

        public init() {}
    }

    /// Loads both splits of `name` from `directory` (or the dataset's default place).
    public static func load(_ name: String, directory: String? = nil, folder options: FolderOptions = FolderOptions())
        throws -> DatasetSplits
    {
        guard let entry = entries.first(where: { $0.name == name }) else {
            throw UserError("unknown dataset '\(name)'; valid datasets: \(names.joined(separator: ", "))")
        }
        if name == "synthetic" {
            let train = SyntheticDataset.make(split: "train", count: 10_000, seed: 0)
            let test = SyntheticDataset.make(split: "test", count: 2_000, seed: 0)
            let (mean, std) = train.channelStatistics()
            return DatasetSplits(
                train: train, test: test, mean: mean, std: std, defaultAugmentation: Augmentation(cropPadding: 2))
        }
        guard let folder = directory ?? entry.defaultDirectory else {
            throw UserError("dataset '\(name)' has no default location; pass --data-dir DIR (\(entry.summary))")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            let hint =
                name == "fashion-mnist" && directory == nil
                ? "; install it with launch/install-deps (Debian package dataset-fashion-mnist) or pass --data-dir"
                : ""
            throw UserError("dataset '\(name)': folder \(folder) not found\(hint)")
        }
        switch name {
        case "folder":
            let (train, val) = try ImageFolder.splits(
                train: "\(folder)/train", val: options.valDirectory ?? "\(folder)/val")
            func dataset(_ split: ImageFolder) -> ImageDataset {
                ImageDataset(
                    name: "folder", files: ImageFiles(folder: split, skipBadImages: options.skipBadImages),
                    pipeline: options.pipeline)
            }
            // timm's IMAGENET_DEFAULT_MEAN / _STD, what pretrained timm models expect.
            return DatasetSplits(
                train: dataset(train), test: dataset(val),
                mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225],
                defaultAugmentation: Augmentation(horizontalFlip: true))
        case "fashion-mnist":
            let (train, test) = try IDXReader.load(name: name, directory: folder, classes: 10)
            return DatasetSplits(
                train: train, test: test, mean: [0.2860], std: [0.3530],
                defaultAugmentation: Augmentation(cropPadding: 2, horizontalFlip: true))
        case "mnist":
            let (train, test) = try IDXReader.load(name: name, directory: folder, classes: 10)
            return DatasetSplits(
                train: train, test: test, mean: [0.1307], std: [0.3081],
                defaultAugmentation: Augmentation(cropPadding: 2))
        case "cifar10":
            let (train, test) = try CIFARReader.loadCIFAR10(directory: folder)
            return DatasetSplits(
                train: train, test: test, mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616],
                defaultAugmentation: Augmentation(cropPadding: 4, horizontalFlip: true))
        case "cifar100":
            let (train, test) = try CIFARReader.loadCIFAR100(directory: folder)
            return DatasetSplits(
                train: train, test: test, mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762],
                defaultAugmentation: Augmentation(cropPadding: 4, horizontalFlip: true))
        default:  // npy
            let (train, test) = try NPYReader.load(directory: folder)
            let (mean, std) = train.channelStatistics()
            return DatasetSplits(train: train, test: test, mean: mean, std: std, defaultAugmentation: .none)
        }
    }
}
