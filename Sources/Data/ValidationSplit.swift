import Settings
import Tensors

/// A validation split held out of the training images, for every choice made while training
/// (the best epoch, settings): stratified by class, so each class keeps its share, and fixed
/// by the seed alone, so every rank and a resumed run hold out the same images.
public enum ValidationSplit {
    /// Sorted indices of the `count` held-out images and of the rest. Each class gives
    /// count x (its share of the images), the largest remainders rounded up so the total is
    /// exact; within a class the images are a seeded shuffle's first ones.
    public static func indices(labels: [Int32], classes: Int, count: Int, seed: UInt64) -> (
        train: [Int], validation: [Int]
    ) {
        var byClass = [[Int]](repeating: [], count: classes)
        for (index, label) in labels.enumerated() { byClass[Int(label)].append(index) }
        let total = labels.count
        let exact = byClass.map { Double(count) * Double($0.count) / Double(max(total, 1)) }
        var quota = exact.map { Int($0) }
        let order = (0..<classes).sorted { (exact[$0] - Double(quota[$0]), $1) > (exact[$1] - Double(quota[$1]), $0) }
        for c in order.prefix(count - quota.reduce(0, +)) { quota[c] += 1 }
        var held: [Int] = []
        for c in 0..<classes {
            var members = byClass[c]
            var generator = RandomGenerator.derived(seed: seed, 0x7A1, UInt64(c))
            members.shuffle(using: &generator)
            held += members.prefix(quota[c])
        }
        held.sort()
        let heldSet = Set(held)
        return ((0..<total).filter { !heldSet.contains($0) }, held)
    }

    /// The number of images `setting` holds out of `trainCount`: a whole number, or a
    /// fraction below 1; an error names the key when it leaves no training image.
    public static func count(for setting: Double, trainCount: Int, classes: Int) throws -> Int {
        let count = setting < 1 ? Int((setting * Double(trainCount)).rounded()) : Int(setting)
        guard setting < 1 || setting == setting.rounded() else {
            throw UserError("config: 'val_split' \(setting) is neither a whole number of images nor a fraction below 1")
        }
        guard count >= 1 else {
            throw UserError("config: 'val_split' \(setting) of \(trainCount) training images holds out none")
        }
        guard count <= trainCount - classes else {
            throw UserError(
                "config: 'val_split' \(setting) holds out \(count) of the \(trainCount) training images; leave at least one per class (\(classes)) to train on"
            )
        }
        return count
    }
}

extension ImageDataset {
    /// The images at `indices`, in that order, under `name` (in memory: copied; files: the
    /// same files, a bad one replaced within the subset).
    public func subset(_ indices: [Int]) -> ImageDataset {
        if let files, let pipeline {
            let folder = files.folder
            let chosen = ImageFolder(
                root: folder.root, classNames: folder.classNames, paths: indices.map { folder.paths[$0] },
                labels: indices.map { folder.labels[$0] })
            return ImageDataset(
                name: name, files: ImageFiles(folder: chosen, skipBadImages: files.skipBadImages), pipeline: pipeline)
        }
        let size = storedShape.reduce(1, *)
        var chosen = [UInt8]()
        chosen.reserveCapacity(indices.count * size)
        pixels.withUnsafeBufferPointer { source in
            for index in indices { chosen.append(contentsOf: source[(index * size)..<((index + 1) * size)]) }
        }
        var copy = ImageDataset(
            name: name, shape: storedShape, classes: classes, pixels: chosen, labels: indices.map { labels[$0] })
        if let pipeline { copy = copy.with(pipeline) }
        return copy
    }
}
