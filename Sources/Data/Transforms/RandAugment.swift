import Foundation
import Settings
import Tensors

/// timm's RandAugment (`rand_augment_transform`), configured by timm's string: `rand` then
/// dash-separated sections in any order, `m` magnitude (0-10, default 10), `n` ops per image
/// (default 2), `p` probability of each op (0.5), `mstd` standard deviation of the magnitude
/// noise (above 100: uniform in 0...m), `mmax` the magnitude's upper bound (10), `inc1` the ops
/// whose severity increases with the magnitude, `t` the op set (`weights`, `3a`, `3aw`). For
/// example `rand-m9-mstd0.5-inc1`, OFA's and DeiT's setting. Each op's argument follows timm's
/// level functions; the ops are PIL's (`PixelImage`'s), reproduced exactly.
public struct RandAugment: Equatable, Sendable, Codable {
    /// timm's op names.
    public enum Operation: String, CaseIterable, Sendable, Codable {
        case autoContrast = "AutoContrast", equalize = "Equalize", invert = "Invert", rotate = "Rotate"
        case posterize = "Posterize", posterizeIncreasing = "PosterizeIncreasing", posterizeOriginal =
            "PosterizeOriginal"
        case solarize = "Solarize", solarizeIncreasing = "SolarizeIncreasing", solarizeAdd = "SolarizeAdd"
        case color = "Color", colorIncreasing = "ColorIncreasing", contrast = "Contrast", contrastIncreasing =
            "ContrastIncreasing"
        case brightness = "Brightness", brightnessIncreasing = "BrightnessIncreasing"
        case sharpness = "Sharpness", sharpnessIncreasing = "SharpnessIncreasing"
        case shearX = "ShearX", shearY = "ShearY", translateXRelative = "TranslateXRel", translateYRelative =
            "TranslateYRel"
        case desaturate = "Desaturate", gaussianBlur = "GaussianBlur"

        /// The op with its argument at `level` (0-10), as timm's `LEVEL_TO_ARG`; the signed
        /// ones are negated with probability 1/2.
        public func adjustment(level: Double, generator: inout RandomGenerator) -> Adjustment {
            func negated(_ v: Double) -> Double { Double.random(in: 0..<1, using: &generator) > 0.5 ? -v : v }
            let fraction = level / 10
            let enhance = fraction * 1.8 + 0.1
            func enhanceIncreasing() -> Double { max(0.1, 1.0 + negated(fraction * 0.9)) }
            let posterizeBits = Int(fraction * 4), solarizeThreshold = min(256, Int(fraction * 256))
            func between(_ low: Double, _ high: Double) -> Double { max(low, min(high, low + (high - low) * fraction)) }
            switch self {
            case .autoContrast: return .autoContrast
            case .equalize: return .equalize
            case .invert: return .invert
            case .rotate: return .rotate(degrees: negated(fraction * 30))
            case .posterize: return .posterize(bits: posterizeBits)
            case .posterizeIncreasing: return .posterize(bits: 4 - posterizeBits)
            case .posterizeOriginal: return .posterize(bits: posterizeBits + 4)
            case .solarize: return .solarize(threshold: solarizeThreshold)
            case .solarizeIncreasing: return .solarize(threshold: 256 - solarizeThreshold)
            case .solarizeAdd: return .solarizeAdd(min(128, Int(fraction * 110)))
            case .color: return .color(enhance)
            case .colorIncreasing: return .color(enhanceIncreasing())
            case .contrast: return .contrast(enhance)
            case .contrastIncreasing: return .contrast(enhanceIncreasing())
            case .brightness: return .brightness(enhance)
            case .brightnessIncreasing: return .brightness(enhanceIncreasing())
            case .sharpness: return .sharpness(enhance)
            case .sharpnessIncreasing: return .sharpness(enhanceIncreasing())
            case .shearX: return .shearX(negated(fraction * 0.3))
            case .shearY: return .shearY(negated(fraction * 0.3))
            case .translateXRelative: return .translateX(fraction: negated(fraction * 0.45))
            case .translateYRelative: return .translateY(fraction: negated(fraction * 0.45))
            // timm's desaturate: Color at 1 - level, level in 0.5...1.
            case .desaturate: return .color(min(1, max(0, 1 - between(0.5, 1))))
            case .gaussianBlur: return .gaussianBlur(radius: between(0.1, 2))
            }
        }
    }

    /// One op with its argument: what PIL is called with.
    public enum Adjustment: Equatable, Sendable {
        case autoContrast, equalize, invert
        case rotate(degrees: Double)
        case posterize(bits: Int)
        case solarize(threshold: Int)
        case solarizeAdd(Int)
        case color(Double), contrast(Double), brightness(Double), sharpness(Double)
        case shearX(Double), shearY(Double)
        /// A shift by this fraction of the image's width (height).
        case translateX(fraction: Double), translateY(fraction: Double)
        case gaussianBlur(radius: Double)

        /// Whether the op resamples the image (and so takes a filter and the fill colour).
        public var isGeometric: Bool {
            switch self {
            case .rotate, .shearX, .shearY, .translateX, .translateY: return true
            default: return false
            }
        }
    }

    /// timm's `_RAND_TRANSFORMS`.
    public static let standardOperations: [Operation] = [
        .autoContrast, .equalize, .invert, .rotate, .posterize, .solarize, .solarizeAdd, .color, .contrast,
        .brightness, .sharpness, .shearX, .shearY, .translateXRelative, .translateYRelative,
    ]
    /// timm's `_RAND_INCREASING_TRANSFORMS`.
    public static let increasingOperations: [Operation] = [
        .autoContrast, .equalize, .invert, .rotate, .posterizeIncreasing, .solarizeIncreasing, .solarizeAdd,
        .colorIncreasing, .contrastIncreasing, .brightnessIncreasing, .sharpnessIncreasing, .shearX, .shearY,
        .translateXRelative, .translateYRelative,
    ]
    /// timm's `_RAND_3A` (DeiT III's three ops).
    public static let threeAugmentOperations: [Operation] = [.solarizeIncreasing, .desaturate, .gaussianBlur]
    /// timm's `_RAND_WEIGHTED_0` (`tweights`).
    public static let weightedOperations: [(Operation, Double)] = [
        (.rotate, 3), (.shearX, 2), (.shearY, 2), (.translateXRelative, 1), (.translateYRelative, 1),
        (.colorIncreasing, 0.25), (.sharpnessIncreasing, 0.25), (.autoContrast, 0.25), (.solarizeIncreasing, 0.05),
        (.solarizeAdd, 0.05), (.contrastIncreasing, 0.05), (.brightnessIncreasing, 0.05), (.equalize, 0.05),
        (.posterizeIncreasing, 0.05), (.invert, 0.05),
    ]
    /// timm's `_RAND_WEIGHTED_3A` (`t3aw`).
    public static let weightedThreeAugmentOperations: [(Operation, Double)] = [
        (.solarizeIncreasing, 6), (.desaturate, 6), (.gaussianBlur, 6), (.rotate, 3), (.shearX, 2), (.shearY, 2),
        (.posterizeIncreasing, 1), (.autoContrast, 1), (.colorIncreasing, 1), (.sharpnessIncreasing, 1),
        (.contrastIncreasing, 1), (.brightnessIncreasing, 1), (.equalize, 1), (.invert, 1),
    ]

    /// The string it was parsed from.
    public let configuration: String
    public private(set) var operations: [Operation]
    /// Choice weights (summing to 1) for a weighted set, which timm draws without replacement.
    public private(set) var weights: [Double]?
    public private(set) var magnitude: Double = 10
    /// 0: the magnitude is fixed; infinity: uniform in 0...magnitude.
    public private(set) var magnitudeStd: Double = 0
    public private(set) var magnitudeMax: Double = 10
    public private(set) var layers = 2
    public private(set) var probability = 0.5

    /// Parses timm's string; anything timm would not read, or would ignore, is an error naming
    /// the section.
    public init(_ configuration: String) throws {
        self.configuration = configuration
        let sections = configuration.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        func fail(_ why: String) -> UserError {
            UserError(
                "aa: '\(configuration)': \(why) (timm's RandAugment string, e.g. rand-m9-mstd0.5-inc1: m magnitude, n ops, p probability, mstd magnitude noise, mmax magnitude bound, inc1 increasing ops, t op set weights|3a|3aw)"
            )
        }
        guard sections.first == "rand" else {
            throw fail("only RandAugment ('rand-...') is supported; timm's AutoAugment policies and AugMix are not")
        }
        var increasing = false, set: String?
        for section in sections.dropFirst() {
            if section.hasPrefix("t") {
                let name = String(section.dropFirst())
                guard ["weights", "3a", "3aw"].contains(name) else {
                    throw fail("unknown op set '\(name)' in '\(section)'")
                }
                if set == nil { set = name }
                continue
            }
            guard let digit = section.firstIndex(where: \.isNumber) else {
                throw fail("section '\(section)' has no value")
            }
            let key = String(section[..<digit]), text = String(section[digit...])
            func integer() throws -> Int {
                guard let v = Int(text) else { throw fail("'\(section)': \(key) takes a whole number") }
                return v
            }
            func real() throws -> Double {
                guard let v = Double(text), v.isFinite else { throw fail("'\(section)': \(key) takes a number") }
                return v
            }
            switch key {
            case "m": magnitude = Double(try integer())
            case "n": layers = try integer()
            case "p": probability = try real()
            case "mstd":
                let std = try real()
                magnitudeStd = std > 100 ? .infinity : std
            case "mmax":
                // timm: `magnitude_max or 10`, so 0 means the default.
                let bound = try integer()
                magnitudeMax = Double(bound == 0 ? 10 : bound)
            case "inc": increasing = try integer() != 0
            default: throw fail("unknown section '\(section)'")
            }
        }
        guard magnitude <= 1000 else { throw fail("magnitude \(Int(magnitude)) is above 1000") }
        guard (0...100).contains(layers) else { throw fail("n is \(layers); give 0 to 100 ops per image") }
        guard (0...1).contains(probability) else { throw fail("p is \(probability); give a probability in 0...1") }
        guard magnitudeStd >= 0 else { throw fail("mstd is negative") }
        switch set {
        case "weights", "3aw":
            let table = set == "weights" ? Self.weightedOperations : Self.weightedThreeAugmentOperations
            let total = table.map(\.1).reduce(0, +)
            operations = table.map(\.0)
            weights = table.map { $0.1 / total }
            guard layers <= operations.count else {
                throw fail("n is \(layers), but a weighted set draws without replacement from \(operations.count) ops")
            }
        case "3a": operations = Self.threeAugmentOperations
        default: operations = increasing ? Self.increasingOperations : Self.standardOperations
        }
    }

    /// timm keeps colour jitter on with its '3a' sets and turns it off for every other string.
    public var keepsColorJitter: Bool { configuration.contains("3a") }

    /// The ops for one image: `layers` draws, uniform with replacement, or by weight without.
    public func chosenOperations(generator: inout RandomGenerator) -> [Operation] {
        guard var remaining = weights else {
            return (0..<layers).map { _ in operations[Int.random(in: 0..<operations.count, using: &generator)] }
        }
        var candidates = operations, chosen: [Operation] = []
        for _ in 0..<layers {
            let total = remaining.reduce(0, +)
            var target = Double.random(in: 0..<1, using: &generator) * total, pick = remaining.count - 1
            for (i, w) in remaining.enumerated() {
                if target < w {
                    pick = i
                    break
                }
                target -= w
            }
            chosen.append(candidates.remove(at: pick))
            remaining.remove(at: pick)
        }
        return chosen
    }

    /// The image after the chosen ops, each applied with `probability` at a magnitude drawn
    /// around `magnitude` (timm's `AugmentOp`). Geometric ops resample with `interpolation`
    /// (a draw per op when random) and fill uncovered pixels with `fill`, timm's rounded mean.
    public func apply(
        to image: PixelImage, interpolation: ImagePipeline.TrainInterpolation, fill: [UInt8],
        generator: inout RandomGenerator
    ) -> PixelImage {
        var out = image
        for operation in chosenOperations(generator: &generator) {
            if probability < 1 && Double.random(in: 0..<1, using: &generator) > probability { continue }
            var level = magnitude
            if magnitudeStd == .infinity {
                level = Double.random(in: 0...magnitude, using: &generator)
            } else if magnitudeStd > 0 {
                // A normal draw (Box-Muller), as timm's random.gauss(m, mstd).
                let u = 1 - Double.random(in: 0..<1, using: &generator), v = Double.random(in: 0..<1, using: &generator)
                level = magnitude + magnitudeStd * (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
            }
            level = max(0, min(level, magnitudeMax))
            let adjustment = operation.adjustment(level: level, generator: &generator)
            var filter = Interpolation.bicubic
            if adjustment.isGeometric {
                switch interpolation {
                case .bilinear: filter = .bilinear
                case .bicubic: filter = .bicubic
                case .random: filter = generator.next() & 1 == 0 ? .bilinear : .bicubic
                }
            }
            out = out.applying(adjustment, interpolation: filter, fill: fill)
        }
        return out
    }
}

extension PixelImage {
    /// The image after one RandAugment op, as timm calls PIL for it.
    public func applying(_ adjustment: RandAugment.Adjustment, interpolation: Interpolation, fill: [UInt8])
        -> PixelImage
    {
        let fill = channels == fill.count ? fill : [UInt8](repeating: fill.first ?? 128, count: channels)
        switch adjustment {
        case .autoContrast: return autocontrasted()
        case .equalize: return equalized()
        case .invert: return inverted()
        case .rotate(let degrees): return rotated(degrees: degrees, interpolation: interpolation, fill: fill)
        case .posterize(let bits): return posterized(bits: bits)
        case .solarize(let threshold): return solarized(threshold: threshold)
        case .solarizeAdd(let add): return solarizedAdding(add)
        case .color(let factor): return adjustingSaturation(Float(factor))
        case .contrast(let factor): return adjustingContrast(Float(factor))
        case .brightness(let factor): return adjustingBrightness(Float(factor))
        case .sharpness(let factor): return adjustingSharpness(Float(factor))
        case .shearX(let factor):
            return affineTransformed([1, factor, 0, 0, 1, 0], interpolation: interpolation, fill: fill)
        case .shearY(let factor):
            return affineTransformed([1, 0, 0, factor, 1, 0], interpolation: interpolation, fill: fill)
        case .translateX(let fraction):
            return affineTransformed(
                [1, 0, fraction * Double(width), 0, 1, 0], interpolation: interpolation, fill: fill)
        case .translateY(let fraction):
            return affineTransformed(
                [1, 0, 0, 0, 1, fraction * Double(height)], interpolation: interpolation, fill: fill)
        case .gaussianBlur(let radius): return gaussianBlurred(radius: radius)
        }
    }
}
