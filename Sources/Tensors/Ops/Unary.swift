import Foundation

/// Elementwise functions whose derivative is computed from the saved input or output.
enum UnaryKind { case relu, relu6, gelu, sigmoid, tanh, exp, log, square, sqrt, abs }

private let inverseSqrt2: Float = 0.70710678118654752
private let inverseSqrt2Pi: Float = 0.39894228040143268

private func unaryForward(
    _ kind: UnaryKind, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ range: Range<Int>
) {
    switch kind {
    case .relu:
        let base = range.lowerBound
        mapLanes(range.count) { i, n in
            let v = loadLanes(x, base + i, n)
            storeLanes(v.replacing(with: 0, where: v .< 0), y, base + i, n)
        }
    case .relu6:
        let base = range.lowerBound
        mapLanes(range.count) { i, n in storeLanes(clamp(loadLanes(x, base + i, n), 0, 6), y, base + i, n) }
    case .gelu: transformLanes(GELULanes.self, x, y, range)
    case .sigmoid: transformLanes(SigmoidLanes.self, x, y, range)
    case .tanh: for i in range { y[i] = Foundation.tanh(x[i]) }
    case .exp: transformLanes(ExpLanes.self, x, y, range)
    case .log: for i in range { y[i] = Foundation.log(x[i]) }
    case .square: for i in range { y[i] = x[i] * x[i] }
    case .sqrt: for i in range { y[i] = x[i].squareRoot() }
    case .abs: for i in range { y[i] = Swift.abs(x[i]) }
    }
}

// The vectorised functions as types, so that the loops specialised on them inline them.
private enum GELULanes: LaneFunction {
    @inline(__always)
    static func callAsFunction(_ v: SIMD8<Float>) -> SIMD8<Float> { 0.5 * v * (1 + fastErf(v * inverseSqrt2)) }
}

/// g * GELU'(x), from (x, g).
private enum GELUDerivativeLanes: LaneFunction2 {
    @inline(__always)
    static func callAsFunction(_ v: SIMD8<Float>, _ g: SIMD8<Float>) -> SIMD8<Float> {
        let cdf = 0.5 * (1 + fastErf(v * inverseSqrt2))
        let pdf = inverseSqrt2Pi * fastExp(-0.5 * v * v)
        return g * multiplyAdd(v, pdf, cdf)
    }
}

private enum SigmoidLanes: LaneFunction {
    @inline(__always)
    static func callAsFunction(_ v: SIMD8<Float>) -> SIMD8<Float> { 1 / (1 + fastExp(-v)) }
}

private enum ExpLanes: LaneFunction {
    @inline(__always)
    static func callAsFunction(_ v: SIMD8<Float>) -> SIMD8<Float> { fastExp(v) }
}

/// Whether f' is computed from the input x; the others compute it from the output y = f(x).
private func derivativeReadsInput(_ kind: UnaryKind) -> Bool { [.gelu, .log, .square, .abs].contains(kind) }

/// gx = g * f'(x), from `kept`: x where `derivativeReadsInput`, otherwise y = f(x).
private func unaryBackward(
    _ kind: UnaryKind, _ kept: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>,
    _ range: Range<Int>
) {
    let (x, y) = (kept, kept)
    switch kind {
    case .relu:
        // From the output (y <= 0 exactly where x <= 0), which the next op usually keeps anyway.
        let base = range.lowerBound
        mapLanes(range.count) { i, n in
            let v = loadLanes(y, base + i, n)
            storeLanes(loadLanes(g, base + i, n).replacing(with: 0, where: v .<= 0), gx, base + i, n)
        }
    case .relu6:
        let base = range.lowerBound
        mapLanes(range.count) { i, n in
            let v = loadLanes(y, base + i, n)
            storeLanes(loadLanes(g, base + i, n).replacing(with: 0, where: (v .<= 0) .| (v .>= 6)), gx, base + i, n)
        }
    case .gelu: transformLanes(GELUDerivativeLanes.self, x, g, gx, range)
    case .sigmoid: for i in range { gx[i] = g[i] * y[i] * (1 - y[i]) }
    case .tanh: for i in range { gx[i] = g[i] * (1 - y[i] * y[i]) }
    case .exp: for i in range { gx[i] = g[i] * y[i] }
    case .log: for i in range { gx[i] = g[i] / x[i] }
    case .square: for i in range { gx[i] = 2 * g[i] * x[i] }
    case .sqrt: for i in range { gx[i] = g[i] * 0.5 / y[i] }
    case .abs: for i in range { gx[i] = x[i] > 0 ? g[i] : (x[i] < 0 ? -g[i] : 0) }
    }
}

private func unary(_ kind: UnaryKind, _ x: Tensor) -> Tensor {
    let out = Tensor(uninitializedShape: x.shape)
    let px = x.data, po = out.data
    let grain = kind == .relu || kind == .relu6 || kind == .square || kind == .abs ? 1 << 15 : 1 << 12
    // Under bfloat16 autocast a GELU feeds a product (an MLP's second layer), which takes its
    // output as bfloat16: written here, each block while it is in cache, instead of by a
    // conversion pass over the whole output in the product. Only where something reads the
    // words: the native product, or a backward (the emulation multiplies the floats).
    if kind == .gelu && Autocast.precision == .bfloat16
        && (BFloat16Arithmetic.effective == .native || Tape.current.willRecord([x]))
    {
        let words = BFloat16.Words(uninitializedCount: x.count)
        parallelFor(x.count, grain: grain) { range in
            var start = range.lowerBound
            while start < range.upperBound {
                let end = min(range.upperBound, start + 2048)
                unaryForward(kind, px, po, start..<end)
                BFloat16.wordsOnThisThread(po + start, into: words.pointer + start, count: end - start)
                start = end
            }
        }
        out.savedWords = words
    } else {
        parallelFor(x.count, grain: grain) { unaryForward(kind, px, po, $0) }
    }
    guard Tape.current.recording([x], family: .elementwise) else { return out }
    if kind == .relu6 && Autocast.precision == .bfloat16 { return recordRelu6Mask(x, out) }
    // Only the side the derivative reads is kept: the input or the output. Under bfloat16
    // autocast a ReLU keeps its output's bfloat16 copy, which the product after it keeps anyway:
    // rounding keeps the sign, so the mask is the same (float32 subnormals aside, which round
    // to zero).
    let precision = kind == .relu ? Autocast.precision : .float32
    let node = x.node
    let kept = SavedActivation(derivativeReadsInput(kind) ? x : out, precision: precision)
    Tape.current.record(out, inputs: [x], family: .elementwise) { g in
        let gx = Tensor(uninitializedShape: node.shape)
        kept.withValues { kept in
            let pg = g.data, pgx = gx.data, pk = kept.data
            parallelFor(gx.count, grain: grain) { unaryBackward(kind, pk, pg, pgx, $0) }
        }
        accumulateGradient(node, gx)
    }
    return out
}

/// ReLU6 under bfloat16 autocast keeps a byte per value, whether the output is inside (0, 6),
/// instead of its float32 output: the product after it keeps a bfloat16 copy, but rounding can
/// move a value onto 6, so the mask cannot come from that copy.
private func recordRelu6Mask(_ x: Tensor, _ out: Tensor) -> Tensor {
    let mask = Storage(count: (x.count + 3) / 4)
    let inside = UnsafeMutableRawPointer(mask.base).bindMemory(to: UInt8.self, capacity: 4 * mask.capacity)
    let py = out.data
    parallelFor(x.count, grain: 1 << 15) { range in
        for i in range { inside[i] = py[i] > 0 && py[i] < 6 ? 1 : 0 }
    }
    let node = x.node
    Tape.current.record(out, inputs: [x], family: .elementwise) { g in
        let gx = Tensor(uninitializedShape: node.shape)
        let pg = g.data, pgx = gx.data
        withExtendedLifetime(mask) {
            parallelFor(gx.count, grain: 1 << 15) { range in
                for i in range { pgx[i] = inside[i] != 0 ? pg[i] : 0 }
            }
        }
        accumulateGradient(node, gx)
    }
    return out
}

public func relu(_ x: Tensor) -> Tensor { unary(.relu, x) }
/// min(max(x, 0), 6), MobileNetV2's activation.
public func relu6(_ x: Tensor) -> Tensor { unary(.relu6, x) }
/// GELU in the exact erf form (PyTorch's default, approximate = "none").
public func gelu(_ x: Tensor) -> Tensor { unary(.gelu, x) }
public func sigmoid(_ x: Tensor) -> Tensor { unary(.sigmoid, x) }
public func tanh(_ x: Tensor) -> Tensor { unary(.tanh, x) }
public func exp(_ x: Tensor) -> Tensor { unary(.exp, x) }
public func log(_ x: Tensor) -> Tensor { unary(.log, x) }
public func square(_ x: Tensor) -> Tensor { unary(.square, x) }
public func sqrt(_ x: Tensor) -> Tensor { unary(.sqrt, x) }
public func abs(_ x: Tensor) -> Tensor { unary(.abs, x) }
