import Foundation
import Tensors

/// timm's `Mixup` in batch mode: with probability `probability`, a whole batch is blended with
/// itself paired differently, either by Mixup (x lam + x' (1 - lam), lam ~ Beta(mixup, mixup))
/// or by CutMix (a box of x' pasted into x, lam ~ Beta(cutmix, cutmix), then corrected to the
/// box's true share), chosen with `switchProbability` when both are on; the soft targets are
/// the smoothed one-hot labels blended by lam. The images are blended before anything sees
/// them, so the teacher gets the same mixed images as the student.
///
/// Pairing: timm pairs sample i with B-1-i of each process's batch, which makes a run depend on
/// how many ranks split the batch. Here each sample's partner is the one half a batch away
/// (local index k with k + K/2 mod K), which stays on the same rank for every rank count that
/// divides half the global batch, and lam, the mode and the box are drawn from (seed, step):
/// 1, 2 and 4 ranks mix the same pairs the same way.
public struct Mixup: Equatable, Sendable {
    public var mixupAlpha = 0.0
    public var cutmixAlpha = 0.0
    public var probability = 1.0
    public var switchProbability = 0.5
    public var labelSmoothing = 0.1

    public init() {}

    public var isActive: Bool { (mixupAlpha > 0 || cutmixAlpha > 0) && probability > 0 }

    /// How one batch is mixed.
    public struct Draw: Equatable, Sendable {
        public let lambda: Double
        /// The pasted region (rows, columns) for CutMix; nil for Mixup or no mixing.
        public let box: (top: Int, bottom: Int, left: Int, right: Int)?

        public static func == (a: Draw, b: Draw) -> Bool {
            a.lambda == b.lambda && a.box?.top == b.box?.top && a.box?.bottom == b.box?.bottom
                && a.box?.left == b.box?.left && a.box?.right == b.box?.right
        }
    }

    /// timm's `_params_per_batch` and `rand_bbox` (with `correct_lam`) for images of `height` x `width`.
    public func draw(height: Int, width: Int, seed: UInt64, step: Int) -> Draw {
        var generator = RandomGenerator.derived(seed: seed, 0x313, UInt64(step))
        guard isActive, Double.random(in: 0..<1, using: &generator) < probability else {
            return Draw(lambda: 1, box: nil)
        }
        let useCutmix =
            cutmixAlpha > 0 && (mixupAlpha <= 0 || Double.random(in: 0..<1, using: &generator) < switchProbability)
        let alpha = useCutmix ? cutmixAlpha : mixupAlpha
        let lambda = Self.beta(alpha, generator: &generator)
        guard useCutmix else { return Draw(lambda: lambda, box: nil) }
        let cut = (1 - lambda).squareRoot()
        let cutH = Int(Double(height) * cut), cutW = Int(Double(width) * cut)
        let cy = Int.random(in: 0..<height, using: &generator), cx = Int.random(in: 0..<width, using: &generator)
        let top = min(max(cy - cutH / 2, 0), height), bottom = min(max(cy + cutH / 2, 0), height)
        let left = min(max(cx - cutW / 2, 0), width), right = min(max(cx + cutW / 2, 0), width)
        let corrected = 1 - Double((bottom - top) * (right - left)) / Double(height * width)
        return Draw(lambda: corrected, box: (top, bottom, left, right))
    }

    /// `batch` mixed as `draw(step:)` says, with soft targets over `classes` and, as labels, each
    /// sample's class of larger share.
    public func apply(to batch: Batch, classes: Int, seed: UInt64, step: Int) -> Batch {
        let shape = batch.images.shape
        let count = shape[0], channels = shape[1], height = shape[2], width = shape[3]
        ensure(count % 2 == 0, "Mixup: a local batch of \(count) samples has no halves to pair")
        let mix = draw(height: height, width: width, seed: seed, step: step)
        let partner = { (k: Int) in (k + count / 2) % count }
        let sampleSize = channels * height * width
        let source = batch.images, images = Tensor(uninitializedShape: shape)
        let lambda = Float(mix.lambda)
        for k in 0..<count {
            let x = source.data + k * sampleSize, y = source.data + partner(k) * sampleSize,
                out = images.data + k * sampleSize
            if let box = mix.box {
                out.update(from: x, count: sampleSize)
                for c in 0..<channels {
                    for row in box.top..<box.bottom {
                        let offset = (c * height + row) * width
                        (out + offset + box.left).update(from: y + offset + box.left, count: box.right - box.left)
                    }
                }
            } else {
                for i in 0..<sampleSize { out[i] = x[i] * lambda + y[i] * (1 - lambda) }
            }
        }
        // timm's mixup_target: smoothed one-hot of each label and of its partner's, blended by lam.
        let off = Float(labelSmoothing) / Float(classes), on = 1 - Float(labelSmoothing) + off
        let soft = Tensor(repeating: 0, shape: [count, classes])
        var labels: [Int] = []
        for k in 0..<count {
            let row = soft.data + k * classes
            for c in 0..<classes { row[c] = off }
            row[batch.labels[k]] += (on - off) * lambda
            row[batch.labels[partner(k)]] += (on - off) * (1 - lambda)
            var best = 0
            for c in 1..<classes where row[c] > row[best] { best = c }
            labels.append(best)
        }
        return Batch(images: images, labels: labels, indices: batch.indices, softTargets: soft)
    }

    /// A Beta(a, a) sample from two Gamma(a) samples (Marsaglia and Tsang; a < 1 boosted).
    static func beta(_ a: Double, generator: inout RandomGenerator) -> Double {
        let x = gamma(a, generator: &generator), y = gamma(a, generator: &generator)
        return x + y > 0 ? x / (x + y) : 0.5
    }

    static func gamma(_ shape: Double, generator: inout RandomGenerator) -> Double {
        if shape < 1 {
            let u = Double.random(in: Double.leastNonzeroMagnitude..<1, using: &generator)
            return gamma(shape + 1, generator: &generator) * pow(u, 1 / shape)
        }
        let d = shape - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            var x = 0.0, v = 0.0
            repeat {
                x = Double(generator.nextNormal())
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = Double.random(in: 0..<1, using: &generator)
            if u < 1 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + d * (1 - v + log(v)) { return d * v }
        }
    }
}
