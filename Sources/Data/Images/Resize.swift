/// Resampling filters of PIL's `Image.resize` (what torchvision's and timm's transforms call on
/// PIL images), reproduced to the bit: the same support widened by the scale when shrinking,
/// the same per-output weights normalised in double precision and rounded to 22-bit fixed
/// point, a horizontal pass then a vertical one, each rounded and clipped to 8 bits.
public enum Interpolation: String, Sendable, CaseIterable, Codable {
    case bilinear, bicubic

    var support: Double { self == .bilinear ? 1 : 2 }

    func weight(_ t: Double) -> Double {
        let x = Swift.abs(t)
        switch self {
        case .bilinear:
            return x < 1 ? 1 - x : 0
        case .bicubic:
            // Keys' cubic convolution with a = -0.5, as PIL and PyTorch.
            let a = -0.5
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        }
    }

    /// For each output index along an axis of `input` samples resized to `output`: the first
    /// input index and the weights (normalised, in double precision) of the inputs from there.
    public func axisWeights(input: Int, output: Int) -> [(first: Int, weights: [Double])] {
        let scale = Double(input) / Double(output)
        let filterScale = max(scale, 1)
        let support = self.support * filterScale
        return (0..<output).map { i in
            let center = (Double(i) + 0.5) * scale
            let first = max(Int(center - support + 0.5), 0)
            let last = min(Int(center + support + 0.5), input)
            var weights = (first..<last).map { weight((Double($0) - center + 0.5) / filterScale) }
            let total = weights.reduce(0, +)
            if total != 0 { weights = weights.map { $0 / total } }
            return (first, weights)
        }
    }
}

private let precisionBits = 22

/// An axis's weights in PIL's 22-bit fixed point, flattened: output i reads `taps[i]` inputs
/// from `first[i]` with weights `weights[i * stride ..< i * stride + taps[i]]`.
private struct FixedWeights {
    var first: [Int] = [], taps: [Int] = [], weights: [Int32] = []
    var stride = 0

    init(_ axis: [(first: Int, weights: [Double])]) {
        stride = axis.map(\.weights.count).max() ?? 0
        weights = [Int32](repeating: 0, count: axis.count * stride)
        for (i, entry) in axis.enumerated() {
            first.append(entry.first)
            taps.append(entry.weights.count)
            for (k, w) in entry.weights.enumerated() {
                weights[i * stride + k] = Int32(
                    w < 0 ? -0.5 + w * Double(1 << precisionBits) : 0.5 + w * Double(1 << precisionBits))
            }
        }
    }
}

@inline(__always)
private func clip8(_ sum: Int32) -> UInt8 {
    let shifted = sum >> Int32(precisionBits)
    return UInt8(truncatingIfNeeded: min(max(shifted, 0), 255))
}

extension PixelImage {
    /// This image resized to `width` x `height` as PIL's `resize((width, height), filter)` does.
    public func resized(width newWidth: Int, height newHeight: Int, interpolation: Interpolation) -> PixelImage {
        var current = self
        let n = channels
        let rounding: Int32 = 1 << Int32(precisionBits - 1)
        if newWidth != width {
            let columns = FixedWeights(interpolation.axisWeights(input: width, output: newWidth))
            var out = [UInt8](repeating: 0, count: newWidth * height * n)
            pixels.withUnsafeBufferPointer { source in
                out.withUnsafeMutableBufferPointer { target in
                    columns.weights.withUnsafeBufferPointer { weights in
                        for y in 0..<height {
                            let row = source.baseAddress! + y * width * n,
                                outRow = target.baseAddress! + y * newWidth * n
                            for x in 0..<newWidth {
                                let w = weights.baseAddress! + x * columns.stride, taps = columns.taps[x]
                                let start = row + columns.first[x] * n
                                if n == 3 {
                                    var r = rounding, g = rounding, b = rounding
                                    for k in 0..<taps {
                                        let p = start + 3 * k, weight = w[k]
                                        r &+= Int32(p[0]) &* weight
                                        g &+= Int32(p[1]) &* weight
                                        b &+= Int32(p[2]) &* weight
                                    }
                                    outRow[3 * x] = clip8(r)
                                    outRow[3 * x + 1] = clip8(g)
                                    outRow[3 * x + 2] = clip8(b)
                                } else {
                                    for c in 0..<n {
                                        var sum = rounding
                                        for k in 0..<taps { sum &+= Int32(start[k * n + c]) &* w[k] }
                                        outRow[x * n + c] = clip8(sum)
                                    }
                                }
                            }
                        }
                    }
                }
            }
            current = PixelImage(width: newWidth, height: height, channels: n, pixels: out)
        }
        if newHeight != height {
            let rows = FixedWeights(interpolation.axisWeights(input: height, output: newHeight))
            let rowBytes = newWidth * n
            var out = [UInt8](repeating: 0, count: rowBytes * newHeight)
            var sums = [Int32](repeating: 0, count: rowBytes)
            current.pixels.withUnsafeBufferPointer { source in
                out.withUnsafeMutableBufferPointer { target in
                    sums.withUnsafeMutableBufferPointer { sums in
                        for y in 0..<newHeight {
                            for i in 0..<rowBytes { sums[i] = rounding }
                            // Tap by tap over whole rows: the inner loop runs over contiguous bytes.
                            for k in 0..<rows.taps[y] {
                                let weight = rows.weights[y * rows.stride + k]
                                let input = source.baseAddress! + (rows.first[y] + k) * rowBytes
                                for i in 0..<rowBytes { sums[i] &+= Int32(input[i]) &* weight }
                            }
                            let outRow = target.baseAddress! + y * rowBytes
                            for i in 0..<rowBytes { outRow[i] = clip8(sums[i]) }
                        }
                    }
                }
            }
            current = PixelImage(width: newWidth, height: newHeight, channels: n, pixels: out)
        }
        return current
    }

    /// The region at (`left`, `top`) of `width` x `height`, zero (black) where it leaves the
    /// image, as PIL's `crop`.
    public func cropped(left: Int, top: Int, width newWidth: Int, height newHeight: Int) -> PixelImage {
        let n = channels
        var out = [UInt8](repeating: 0, count: newWidth * newHeight * n)
        for y in 0..<newHeight {
            let sy = top + y
            guard sy >= 0 && sy < height else { continue }
            for x in 0..<newWidth {
                let sx = left + x
                guard sx >= 0 && sx < width else { continue }
                for c in 0..<n { out[(y * newWidth + x) * n + c] = pixels[(sy * width + sx) * n + c] }
            }
        }
        return PixelImage(width: newWidth, height: newHeight, channels: channels, pixels: out)
    }

    /// timm's evaluation transform: the shorter side resized to floor(size / crop_pct) (the
    /// longer in proportion, rounded down, as torchvision's `Resize(int)`), then the centre
    /// `size` x `size` (torchvision's `CenterCrop`: offsets rounded half to even, as Python's
    /// `round`).
    public func resizedAndCenterCropped(size: Int, cropPercent: Double, interpolation: Interpolation) -> PixelImage {
        let short = Int((Double(size) / cropPercent).rounded(.down))
        let (w, h) =
            width <= height
            ? (short, Int(Double(short) * Double(height) / Double(width)))
            : (Int(Double(short) * Double(width) / Double(height)), short)
        let resized =
            (w == width && h == height) ? self : self.resized(width: w, height: h, interpolation: interpolation)
        let top = (Double(h - size) / 2).rounded(.toNearestOrEven),
            left = (Double(w - size) / 2).rounded(.toNearestOrEven)
        return resized.cropped(left: Int(left), top: Int(top), width: size, height: size)
    }
}
