import Foundation
import Tensors

/// A procedural, class-structured dataset for tests and offline runs: each class is an
/// oriented grating of its own angle, frequency and colour, drawn with a random phase, shift
/// and noise. Deterministic in (seed, split, index); learnable by CNNs and ViTs alike.
enum SyntheticDataset {
    static let shape = [3, 32, 32]
    static let classes = 10

    static func make(split: String, count: Int, seed: UInt64) -> ImageDataset {
        let (c, h, w) = (shape[0], shape[1], shape[2])
        var pixels = [UInt8](repeating: 0, count: count * c * h * w)
        var labels = [Int32](repeating: 0, count: count)
        let splitKey: UInt64 = split == "train" ? 1 : 2
        for i in 0..<count {
            var generator = RandomGenerator.derived(seed: seed, splitKey, UInt64(i))
            let label = Int(generator.next() % UInt64(classes))
            labels[i] = Int32(label)
            let angle = Double.pi * Double(label) / Double(classes)
            let frequency = 2.0 + Double(label % 3)
            let phase = 2 * Double.pi * Double(generator.nextUniform())
            let (dx, dy) = (cos(angle), sin(angle))
            let colour = [
                0.5 + 0.5 * sin(Double(label)), 0.5 + 0.5 * cos(Double(label) * 1.7),
                0.5 + 0.5 * sin(Double(label) * 2.3 + 1),
            ]
            for y in 0..<h {
                for x in 0..<w {
                    let wave = sin(2 * Double.pi * frequency * (Double(x) * dx + Double(y) * dy) / Double(w) + phase)
                    for k in 0..<c {
                        let noise = Double(generator.nextUniform()) * 60 - 30
                        let value = 128 + 90 * wave * colour[k] + noise
                        pixels[((i * c + k) * h + y) * w + x] = UInt8(max(0, min(255, value.rounded())))
                    }
                }
            }
        }
        return ImageDataset(name: "synthetic", shape: shape, classes: classes, pixels: pixels, labels: labels)
    }
}
