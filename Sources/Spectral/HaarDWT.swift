import Tensors

/// One level of the orthonormal 2-D Haar transform on (B, C, H, W); an odd height or width is
/// zero-padded by one row/column at the bottom/right first. Bands, each (B, C, ceil(H/2),
/// ceil(W/2)), on a 2x2 block a b / c d:
/// LL = (a+b+c+d)/2, LH = (a+b-c-d)/2, HL = (a-b+c-d)/2, HH = (a-b-c+d)/2.
/// The result packs them as (4, B, C, h, w) in the order LL, LH, HL, HH.
public func haarDWTLevel(_ x: Tensor) -> Tensor {
    ensure(x.rank == 4, "haarDWTLevel: input \(x.shape) must be (B, C, H, W)")
    let planes = x.shape[0] * x.shape[1], height = x.shape[2], width = x.shape[3]
    let h = (height + 1) / 2, w = (width + 1) / 2
    let out = Tensor(uninitializedShape: [4, x.shape[0], x.shape[1], h, w])
    haarForward(x.data, planes: planes, height: height, width: width, into: out.data)
    Tape.current.record(out, inputs: [x], family: .spectral) { g in
        let gx = Tensor(uninitializedShape: x.shape)
        // Orthonormal: the adjoint is the inverse (then cropping, the adjoint of zero padding).
        haarInverse(g.data, planes: planes, height: height, width: width, into: gx.data)
        accumulateGradient(x, gx)
    }
    return out
}

/// The inverse of `haarDWTLevel`: (4, B, C, h, w) bands back to (B, C, height, width), cropping
/// the padding row/column of an odd size.
public func haarIDWTLevel(_ bands: Tensor, height: Int, width: Int) -> Tensor {
    ensure(
        bands.rank == 5 && bands.shape[0] == 4 && bands.shape[3] == (height + 1) / 2
            && bands.shape[4] == (width + 1) / 2,
        "haarIDWTLevel: bands \(bands.shape) do not invert to \(height)x\(width)")
    let planes = bands.shape[1] * bands.shape[2]
    let out = Tensor(uninitializedShape: [bands.shape[1], bands.shape[2], height, width])
    haarInverse(bands.data, planes: planes, height: height, width: width, into: out.data)
    Tape.current.record(out, inputs: [bands], family: .spectral) { g in
        let gb = Tensor(uninitializedShape: bands.shape)
        haarForward(g.data, planes: planes, height: height, width: width, into: gb.data)
        accumulateGradient(bands, gb)
    }
    return out
}

private func haarForward(
    _ x: UnsafePointer<Float>, planes: Int, height: Int, width: Int, into out: UnsafeMutablePointer<Float>
) {
    let h = (height + 1) / 2, w = (width + 1) / 2
    let band = planes * h * w
    parallelFor(planes) { range in
        for p in range {
            let src = x + p * height * width
            for i in 0..<h {
                for j in 0..<w {
                    let y0 = 2 * i, x0 = 2 * j
                    let a = src[y0 * width + x0]
                    let b = x0 + 1 < width ? src[y0 * width + x0 + 1] : 0
                    let c = y0 + 1 < height ? src[(y0 + 1) * width + x0] : 0
                    let d = x0 + 1 < width && y0 + 1 < height ? src[(y0 + 1) * width + x0 + 1] : 0
                    let o = p * h * w + i * w + j
                    out[o] = (a + b + c + d) * 0.5
                    out[band + o] = (a + b - c - d) * 0.5
                    out[2 * band + o] = (a - b + c - d) * 0.5
                    out[3 * band + o] = (a - b - c + d) * 0.5
                }
            }
        }
    }
}

private func haarInverse(
    _ bands: UnsafePointer<Float>, planes: Int, height: Int, width: Int, into out: UnsafeMutablePointer<Float>
) {
    let h = (height + 1) / 2, w = (width + 1) / 2
    let band = planes * h * w
    parallelFor(planes) { range in
        for p in range {
            let dst = out + p * height * width
            for i in 0..<h {
                for j in 0..<w {
                    let o = p * h * w + i * w + j
                    let ll = bands[o], lh = bands[band + o], hl = bands[2 * band + o], hh = bands[3 * band + o]
                    let y0 = 2 * i, x0 = 2 * j
                    dst[y0 * width + x0] = (ll + lh + hl + hh) * 0.5
                    if x0 + 1 < width { dst[y0 * width + x0 + 1] = (ll + lh - hl - hh) * 0.5 }
                    if y0 + 1 < height { dst[(y0 + 1) * width + x0] = (ll - lh + hl - hh) * 0.5 }
                    if x0 + 1 < width && y0 + 1 < height { dst[(y0 + 1) * width + x0 + 1] = (ll - lh - hl + hh) * 0.5 }
                }
            }
        }
    }
}

/// The bands of a J-level Haar decomposition: the coarsest approximation and, per level from
/// the finest (j = 1), the three detail bands.
public struct WaveletBands {
    public var approximation: Tensor
    /// details[j - 1] = (LH_j, HL_j, HH_j)
    public var details: [(Tensor, Tensor, Tensor)]
    /// (height, width) of the input of each level, finest first, for the inverse.
    public var sizes: [(Int, Int)]

    public var levels: Int { details.count }
}

/// The largest number of levels (at most `requested`) for which the coarsest band is at least 1x1
/// and each level halves something: a level needs height or width above 1.
public func feasibleDWTLevels(height: Int, width: Int, requested: Int) -> Int {
    var levels = 0, h = height, w = width
    while levels < requested && (h > 1 || w > 1) {
        h = (h + 1) / 2
        w = (w + 1) / 2
        levels += 1
    }
    return levels
}

/// J-level Haar DWT recursing on LL.
public func haarDWT(_ x: Tensor, levels: Int) -> WaveletBands {
    ensure(levels >= 1, "haarDWT: levels must be at least 1, got \(levels)")
    var current = x
    var details: [(Tensor, Tensor, Tensor)] = []
    var sizes: [(Int, Int)] = []
    for _ in 0..<levels {
        sizes.append((current.shape[2], current.shape[3]))
        let packed = haarDWTLevel(current)
        let parts = packed.split([1, 1, 1, 1], axis: 0).map { $0.reshape(Array(packed.shape.dropFirst())) }
        details.append((parts[1], parts[2], parts[3]))
        current = parts[0]
    }
    return WaveletBands(approximation: current, details: details, sizes: sizes)
}

/// Reconstructs the input of `haarDWT` from (possibly modified) bands.
public func haarIDWT(_ bands: WaveletBands) -> Tensor {
    var current = bands.approximation
    for level in stride(from: bands.levels - 1, through: 0, by: -1) {
        let (lh, hl, hh) = bands.details[level]
        let packed = concat([current, lh, hl, hh].map { $0.reshape([1] + $0.shape) }, axis: 0)
        current = haarIDWTLevel(packed, height: bands.sizes[level].0, width: bands.sizes[level].1)
    }
    return current
}
