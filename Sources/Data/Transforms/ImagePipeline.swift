import Foundation
import Tensors

/// How a training run's images are brought to `size` x `size`, as timm's `create_transform`
/// builds it. Training: RandomResizedCrop (`scale`, `ratio`, `train_interpolation`), horizontal
/// flip, RandAugment (`aa`) and/or colour jitter (brightness, contrast and saturation, in random
/// order), then after normalisation random erasing (`reprob`, per-pixel normal noise as timm's `remode=pixel`).
/// Evaluation: the shorter side to size / crop_pct, centre crop. Every op is PIL's (or
/// torchvision's on PIL images), reproduced exactly given its parameters; the random choices
/// come from a generator seeded by (seed, epoch, sample index), so every rank and a resumed run
/// make the same ones.
public struct ImagePipeline: Equatable, Sendable, Codable {
    public enum TrainInterpolation: String, Sendable, Codable, CaseIterable {
        case bilinear, bicubic
        /// timm's default: bilinear or bicubic, chosen per sample.
        case random
    }

    public var size: Int
    public var scale: [Double] = [0.08, 1]
    public var ratio: [Double] = [3.0 / 4, 4.0 / 3]
    public var trainInterpolation = TrainInterpolation.random
    public var flipProbability = 0.5
    public var randAugment: RandAugment?
    public var colorJitter = 0.4
    public var erasingProbability = 0.0
    public var cropPercent = 0.875
    public var interpolation = Interpolation.bicubic

    public init(size: Int) { self.size = size }

    /// A crop region, as torchvision's `RandomResizedCrop.get_params` returns it.
    public struct CropBox: Equatable, Sendable {
        public let left, top, width, height: Int

        public init(left: Int, top: Int, width: Int, height: Int) {
            self.left = left
            self.top = top
            self.width = width
            self.height = height
        }
    }

    /// torchvision's `RandomResizedCrop.get_params`: up to ten draws of an area in `scale` and a
    /// log-uniform aspect ratio in `ratio` that fit the image, else the centre crop clamped to
    /// `ratio`.
    public func cropBox(width: Int, height: Int, generator: inout RandomGenerator) -> CropBox {
        let area = Double(width * height)
        let logRatio = (log(ratio[0]), log(ratio[1]))
        for _ in 0..<10 {
            let target = area * Double.random(in: scale[0]..<max(scale[1], scale[0].nextUp), using: &generator)
            let aspect = exp(Double.random(in: logRatio.0..<max(logRatio.1, logRatio.0.nextUp), using: &generator))
            let w = Int((target * aspect).squareRoot().rounded(.toNearestOrEven)),
                h = Int((target / aspect).squareRoot().rounded(.toNearestOrEven))
            if w > 0 && h > 0 && w <= width && h <= height {
                let top = Int.random(in: 0...(height - h), using: &generator),
                    left = Int.random(in: 0...(width - w), using: &generator)
                return CropBox(left: left, top: top, width: w, height: h)
            }
        }
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < ratio[0] {
            h = Int((Double(w) / ratio[0]).rounded(.toNearestOrEven))
        } else if inRatio > ratio[1] {
            w = Int((Double(h) * ratio[1]).rounded(.toNearestOrEven))
        }
        return CropBox(left: (width - w) / 2, top: (height - h) / 2, width: w, height: h)
    }

    /// The training image: crop, resize, flip, RandAugment and colour jitter with choices from
    /// `generator`; `fill` colours what RandAugment's geometric ops uncover.
    public func trainImage(_ image: PixelImage, fill: [UInt8], generator: inout RandomGenerator) -> PixelImage {
        let box = cropBox(width: image.width, height: image.height, generator: &generator)
        let filter: Interpolation
        switch trainInterpolation {
        case .bilinear: filter = .bilinear
        case .bicubic: filter = .bicubic
        case .random: filter = generator.next() & 1 == 0 ? .bilinear : .bicubic
        }
        var out = image.cropped(left: box.left, top: box.top, width: box.width, height: box.height).resized(
            width: size, height: size, interpolation: filter)
        if flipProbability > 0 && Double.random(in: 0..<1, using: &generator) < flipProbability {
            out = out.flippedHorizontally()
        }
        if let randAugment {
            out = randAugment.apply(to: out, interpolation: trainInterpolation, fill: fill, generator: &generator)
        }
        if colorJitter > 0 {
            // torchvision's ColorJitter: the three factors, then the adjustments in random order.
            let low = max(0, 1 - colorJitter), high = 1 + colorJitter
            var order = [0, 1, 2]
            order.shuffle(using: &generator)
            let factors = (0..<3).map { _ in Double.random(in: low..<high, using: &generator) }
            for op in order {
                switch op {
                case 0: out = out.adjustingBrightness(Float(factors[0]))
                case 1: out = out.adjustingContrast(Float(factors[1]))
                default: out = out.adjustingSaturation(Float(factors[2]))
                }
            }
        }
        return out
    }

    /// The evaluation image: shorter side to size / crop_pct, centre crop.
    public func evalImage(_ image: PixelImage) -> PixelImage {
        image.resizedAndCenterCropped(size: size, cropPercent: cropPercent, interpolation: interpolation)
    }

    /// timm's `RandomErasing` (one box, `mode='pixel'`) on a normalised (C, H, W) sample: with
    /// probability `erasingProbability`, a box of 2%-33% of the area, aspect ratio log-uniform in
    /// [0.3, 1/0.3], filled with standard normal noise.
    public func erase(_ sample: UnsafeMutablePointer<Float>, channels: Int, generator: inout RandomGenerator) {
        guard erasingProbability > 0, Double.random(in: 0..<1, using: &generator) < erasingProbability else { return }
        let area = Double(size * size)
        for _ in 0..<10 {
            let target = area * Double.random(in: 0.02..<(1.0 / 3), using: &generator)
            let aspect = exp(Double.random(in: log(0.3)..<log(1 / 0.3), using: &generator))
            let h = Int((target * aspect).squareRoot().rounded(.toNearestOrEven)),
                w = Int((target / aspect).squareRoot().rounded(.toNearestOrEven))
            guard w < size && h < size else { continue }
            let top = Int.random(in: 0...(size - h), using: &generator),
                left = Int.random(in: 0...(size - w), using: &generator)
            for c in 0..<channels {
                for y in top..<(top + h) {
                    for x in left..<(left + w) { sample[(c * size + y) * size + x] = generator.nextNormal() }
                }
            }
            return
        }
    }
}
