import Data
import Foundation
import Settings
import Tensors
import TestSupport
import XCTest

/// RandAugment against timm: every op on PIL images at fixed arguments, timm's level functions
/// and its parsing of configuration strings (`launch/interop/make-augment-fixtures` wrote them).
final class RandAugmentTests: XCTestCase {
    let fixtures = packageRoot.appendingPathComponent("Tests/Fixtures/images").path

    func adjustment(_ name: String, _ argument: String) throws -> RandAugment.Adjustment {
        let value = Double(argument) ?? .nan, whole = Int(value.isNaN ? 0 : value)
        switch name {
        case "AutoContrast": return .autoContrast
        case "Equalize": return .equalize
        case "Invert": return .invert
        case "Rotate": return .rotate(degrees: value)
        case "Posterize": return .posterize(bits: whole)
        case "Solarize": return .solarize(threshold: whole)
        case "SolarizeAdd": return .solarizeAdd(whole)
        case "Color": return .color(value)
        case "Contrast": return .contrast(value)
        case "Brightness": return .brightness(value)
        case "Sharpness": return .sharpness(value)
        case "ShearX": return .shearX(value)
        case "ShearY": return .shearY(value)
        case "TranslateXRel": return .translateX(fraction: value)
        case "TranslateYRel": return .translateY(fraction: value)
        case "GaussianBlur": return .gaussianBlur(radius: value)
        default: throw UserError("fixture op \(name) unknown")
        }
    }

    /// Each op from the pixels PIL decoded, in RGB and grey, both filters for the geometric ops:
    /// identical to timm's call of PIL.
    func testOpsMatchTimmOnPIL() throws {
        let expected = try readFloatTensors("\(fixtures)/augmented.safetensors"),
            decoded = try readFloatTensors("\(fixtures)/decoded.safetensors")
        XCTAssertGreaterThan(expected.count, 150)
        var names: Set<String> = []
        for (key, reference) in expected {
            let parts = key.split(separator: "|").map(String.init)
            let source = try XCTUnwrap(decoded[parts[4]])
            var image = PixelImage(
                width: source.shape[1], height: source.shape[0], pixels: source.values.map { UInt8($0) })
            if parts[3] == "L" {
                image = PixelImage(
                    width: image.width, height: image.height, channels: 1,
                    pixels: (0..<(image.width * image.height)).map { image.luminance(at: $0) })
            }
            let filter: Interpolation = parts[2] == "bilinear" ? .bilinear : .bicubic
            let out = image.applying(
                try adjustment(parts[0], parts[1]), interpolation: filter,
                fill: image.channels == 3 ? [124, 116, 104] : [124])
            XCTAssertEqual(reference.shape, [out.height, out.width, out.channels], key)
            XCTAssertEqual(pixelDifference(out.pixels, reference.values), 0, key)
            names.insert(parts[0])
        }
        XCTAssertEqual(names.count, 16)
    }

    /// Pillow 13 refuses posterize to 0 bits, which timm's PosterizeIncreasing asks for at
    /// magnitude 10; earlier Pillow (and TensorFlow's RandAugment) gave black, as sfkd does.
    func testPosterizeToZeroBitsIsBlack() {
        let image = PixelImage(width: 2, height: 1, pixels: [10, 200, 255, 3, 128, 77])
        XCTAssertEqual(
            image.applying(.posterize(bits: 0), interpolation: .bilinear, fill: [0, 0, 0]).pixels, [0, 0, 0, 0, 0, 0])
    }

    struct Expectations: Decodable {
        struct Parsed: Decodable {
            let ops: [String]
            let weights: [Double]?
            let magnitude: Double, magnitude_max: Double, prob: Double
            let magnitude_std: StringOrNumber
            let layers: Int
        }
        enum StringOrNumber: Decodable {
            case number(Double), text(String)
            init(from decoder: Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let v = try? container.decode(Double.self) {
                    self = .number(v)
                } else {
                    self = .text(try container.decode(String.self))
                }
            }
            var value: Double { if case .number(let v) = self { return v } else { return .infinity } }
        }
        let levels: [String: [String: Double]]
        let parsed: [String: Parsed]
    }

    func expectations() throws -> Expectations {
        try JSONDecoder().decode(
            Expectations.self, from: Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/augmented.json")))
    }

    /// The argument of every op at each level, as timm's LEVEL_TO_ARG (negation off).
    func testLevelFunctionsMatchTimm() throws {
        let levels = try expectations().levels
        XCTAssertEqual(levels.count, 21)
        for (name, table) in levels {
            let operation = try XCTUnwrap(RandAugment.Operation(rawValue: name), name)
            for (levelText, expected) in table {
                let level = try XCTUnwrap(Double(levelText))
                // Draw until the op is not negated (signed ops negate half the time).
                var generator = RandomGenerator(seed: 1), value = -Double.infinity
                for _ in 0..<64 where value != expected {
                    switch operation.adjustment(level: level, generator: &generator) {
                    case .rotate(let v), .color(let v), .contrast(let v), .brightness(let v), .sharpness(let v),
                        .shearX(let v),
                        .shearY(let v), .translateX(let v), .translateY(let v), .gaussianBlur(let v):
                        value = v
                    case .posterize(let v), .solarize(let v), .solarizeAdd(let v): value = Double(v)
                    case .autoContrast, .equalize, .invert: XCTFail(name)
                    }
                    // Desaturate passes timm's `1 - level` on to Color.
                    if operation == .desaturate { value = 1 - value }
                }
                XCTAssertEqual(value, expected, accuracy: 1e-12, "\(name) at \(levelText)")
            }
        }
    }

    func testConfigurationStringsParseAsTimm() throws {
        for (text, expected) in try expectations().parsed {
            let parsed = try RandAugment(text)
            XCTAssertEqual(parsed.operations.map(\.rawValue), expected.ops, text)
            XCTAssertEqual(parsed.magnitude, expected.magnitude, text)
            XCTAssertEqual(parsed.magnitudeStd, expected.magnitude_std.value, text)
            XCTAssertEqual(parsed.magnitudeMax, expected.magnitude_max, text)
            XCTAssertEqual(parsed.layers, expected.layers, text)
            XCTAssertEqual(parsed.probability, expected.prob, text)
            XCTAssertEqual(parsed.weights == nil, expected.weights == nil, text)
            for (a, b) in zip(parsed.weights ?? [], expected.weights ?? []) {
                XCTAssertEqual(a, b, accuracy: 1e-12, text)
            }
        }
        XCTAssertTrue(try RandAugment("rand-m6-t3a").keepsColorJitter)
        XCTAssertFalse(try RandAugment("rand-m9-mstd0.5-inc1").keepsColorJitter)
        for bad in [
            "v0", "augmix-m5", "rand-x9", "rand-m9-foo", "rand-tbogus", "rand-m9.5", "rand-p2", "rand-n200",
            "rand-m9--n2", "rand-tweights-n16",
        ] {
            XCTAssertThrowsError(try RandAugment(bad), bad) { error in
                XCTAssertTrue("\(error)".contains("aa: '\(bad)'"), "\(error)")
            }
        }
    }

    /// Ops are drawn as timm draws them: uniformly with replacement, or by weight without; each
    /// applies with probability p; the same generator state gives the same image.
    func testSelectionAndReproducibility() throws {
        let image = try ImageDecoder.decode(path: "\(fixtures)/folder/train/ant/ant0.jpg")
        let augment = try RandAugment("rand-m9-mstd0.5-inc1")
        var a = RandomGenerator(seed: 3), b = RandomGenerator(seed: 3)
        XCTAssertEqual(
            augment.apply(to: image, interpolation: .random, fill: [124, 116, 104], generator: &a).pixels,
            augment.apply(to: image, interpolation: .random, fill: [124, 116, 104], generator: &b).pixels)
        let never = try RandAugment("rand-m9-p0")
        var c = RandomGenerator(seed: 5)
        XCTAssertEqual(
            never.apply(to: image, interpolation: .bilinear, fill: [0, 0, 0], generator: &c).pixels, image.pixels)

        var counts = [RandAugment.Operation: Int](), generator = RandomGenerator(seed: 11)
        let weighted = try RandAugment("rand-tweights-n3")
        let draws = 20000
        for _ in 0..<draws {
            let chosen = weighted.chosenOperations(generator: &generator)
            XCTAssertEqual(Set(chosen).count, 3)
            counts[chosen[0], default: 0] += 1
        }
        // The first draw follows the weights: Rotate 3/10.1, Invert 0.05/10.1.
        XCTAssertEqual(Double(counts[.rotate] ?? 0) / Double(draws), 3 / 10.1, accuracy: 0.015)
        XCTAssertEqual(Double(counts[.invert] ?? 0) / Double(draws), 0.05 / 10.1, accuracy: 0.003)
    }
}
