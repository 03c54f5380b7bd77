import Tensors

/// Training-time augmentation: a random crop from the image padded with zeros (black) on every
/// side, and a random horizontal flip. The random choices for a sample are a pure function of
/// (seed, epoch, sample index), so any rank, and a resumed run, reproduces them.
public struct Augmentation: Equatable, Sendable, Codable {
    public var cropPadding: Int
    public var horizontalFlip: Bool

    public init(cropPadding: Int = 0, horizontalFlip: Bool = false) {
        self.cropPadding = cropPadding
        self.horizontalFlip = horizontalFlip
    }

    public static let none = Augmentation()

    public var isIdentity: Bool { cropPadding == 0 && !horizontalFlip }
}

/// Writes sample `index` of `dataset` as normalised floats (C, H, W) at `destination`,
/// augmented when `augmentation` is given (for a dataset with a pipeline, its training
/// transforms; otherwise the random crop and flip).
func writeSample(
    _ dataset: ImageDataset, index: Int, mean: [Float], std: [Float], augmentation: Augmentation?,
    seed: UInt64, epoch: Int, into destination: UnsafeMutablePointer<Float>
) throws {
    var generator = RandomGenerator.derived(seed: seed, 0xA06, UInt64(epoch), UInt64(index))
    if let pipeline = dataset.pipeline {
        let source = try dataset.image(at: index)
        // timm fills what RandAugment uncovers with the normalisation mean, rounded to 8 bits.
        let fill = mean.map { UInt8(min(255, (255 * Double($0)).rounded(.toNearestOrEven))) }
        let image =
            augmentation == nil
            ? pipeline.evalImage(source) : pipeline.trainImage(source, fill: fill, generator: &generator)
        let c = image.channels, plane = image.width * image.height
        image.pixels.withUnsafeBufferPointer { pixels in
            for k in 0..<c {
                let scale = 1 / (255 * std[k]), offset = -mean[k] / std[k]
                for p in 0..<plane { destination[k * plane + p] = Float(pixels[p * c + k]) * scale + offset }
            }
        }
        if augmentation != nil { pipeline.erase(destination, channels: c, generator: &generator) }
        return
    }
    let c = dataset.shape[0], h = dataset.shape[1], w = dataset.shape[2]
    var shiftY = 0, shiftX = 0, flip = false
    if let augmentation, !augmentation.isIdentity {
        let p = augmentation.cropPadding
        if p > 0 {
            shiftY = Int(generator.next() % UInt64(2 * p + 1)) - p
            shiftX = Int(generator.next() % UInt64(2 * p + 1)) - p
        }
        if augmentation.horizontalFlip { flip = generator.next() & 1 == 1 }
    }
    dataset.pixels.withUnsafeBufferPointer { pixels in
        let image = pixels.baseAddress! + index * c * h * w
        for k in 0..<c {
            let scale = 1 / (255 * std[k]), offset = -mean[k] / std[k]
            let plane = image + k * h * w
            let out = destination + k * h * w
            for y in 0..<h {
                let sy = y + shiftY
                for x in 0..<w {
                    let sx = (flip ? w - 1 - x : x) + shiftX
                    let inside = sy >= 0 && sy < h && sx >= 0 && sx < w
                    out[y * w + x] = (inside ? Float(plane[sy * w + sx]) : 0) * scale + offset
                }
            }
        }
    }
}
