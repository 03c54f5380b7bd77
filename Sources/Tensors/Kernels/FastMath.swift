import CVector

/// Vectorised exp and erf for the elementwise kernels. The C library's scalar expf/erff cost
/// more than the memory traffic of GELU and softmax; these run eight lanes at a time with
/// errors of a few float ulps (checked against the C library in the tests).

/// Adding 1.5 * 2^23 rounds a float of magnitude below 2^22 to an integer held in the low
/// mantissa bits; plain float arithmetic, unlike Swift's generic SIMD rounding and integer
/// conversion, which do not vectorise.
private let roundingMagic: Float = 12_582_912
private let roundingMagicBits: Int32 = 0x4B40_0000

@inline(__always)
func clamp(_ x: SIMD8<Float>, _ low: Float, _ high: Float) -> SIMD8<Float> {
    x.replacing(with: low, where: x .< low).replacing(with: high, where: x .> high)
}

/// e^x: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n in the exponent bits.
@inline(__always)
public func fastExp(_ x: SIMD8<Float>) -> SIMD8<Float> {
    typealias V = SIMD8<Float>
    let clamped = clamp(x, -87.3, 88.3)
    let shifted = multiplyAdd(clamped, V(repeating: 1.442_695_04), V(repeating: roundingMagic))
    let n = shifted - roundingMagic
    // Cody-Waite: subtract n ln2 in two parts to keep r exact.
    var r = multiplyAdd(n, V(repeating: -0.693_359_375), clamped)
    r = multiplyAdd(n, V(repeating: 2.121_944_4e-4), r)
    // Horner steps as fused multiply-adds where the target has them: fewer instructions and a
    // shorter dependency chain (softmax over attention scores spends its time here).
    var p = V(repeating: 1.987_569_15e-4)
    p = multiplyAdd(p, r, V(repeating: 1.398_199_95e-3))
    p = multiplyAdd(p, r, V(repeating: 8.333_451_9e-3))
    p = multiplyAdd(p, r, V(repeating: 4.166_579_6e-2))
    p = multiplyAdd(p, r, V(repeating: 1.666_666_55e-1))
    p = multiplyAdd(p, r, V(repeating: 5.000_000_1e-1))
    p = multiplyAdd(p * r, r, r + 1)
    let integer = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- roundingMagicBits
    return p * unsafeBitCast((integer &+ 127) &* 8_388_608, to: SIMD8<Float>.self)
}

/// erf(x) as a rational function of x on [-4, 4] (±1 beyond, exact in Float), the
/// approximation Eigen and XLA use for float32; Horner steps as fused multiply-adds (GELU, the
/// transformers' and ConvNeXt's activation, spends its time here).
@inline(__always)
public func fastErf(_ value: SIMD8<Float>) -> SIMD8<Float> {
    typealias V = SIMD8<Float>
    let x = clamp(value, -4, 4)
    let x2 = x * x
    var p = V(repeating: -2.726_142_25e-10)
    p = multiplyAdd(p, x2, V(repeating: 2.770_681_42e-08))
    p = multiplyAdd(p, x2, V(repeating: -2.101_024_02e-06))
    p = multiplyAdd(p, x2, V(repeating: -5.692_506_39e-05))
    p = multiplyAdd(p, x2, V(repeating: -7.349_906_30e-04))
    p = multiplyAdd(p, x2, V(repeating: -2.954_599_80e-03))
    p = multiplyAdd(p, x2, V(repeating: -1.609_603_33e-02))
    p = p * x
    var q = V(repeating: -1.456_607_18e-05)
    q = multiplyAdd(q, x2, V(repeating: -2.133_740_55e-04))
    q = multiplyAdd(q, x2, V(repeating: -1.682_826_97e-03))
    q = multiplyAdd(q, x2, V(repeating: -7.373_329_17e-03))
    q = multiplyAdd(q, x2, V(repeating: -1.426_473_91e-02))
    return p / q
}

/// Applies `body` to `count` floats in chunks of eight (the tail padded and cut).
@inline(__always)
func mapLanes(_ count: Int, _ body: (Int, Int) -> Void) {
    var i = 0
    while i + 8 <= count {
        body(i, 8)
        i += 8
    }
    if i < count { body(i, count - i) }
}

/// A function of eight lanes, as a type: a loop generic over it is specialised with the
/// function inlined (a closure argument stayed a call per vector for GELU's long body).
protocol LaneFunction {
    static func callAsFunction(_ v: SIMD8<Float>) -> SIMD8<Float>
}

/// A function of two sets of eight lanes (a derivative of the input times the gradient).
protocol LaneFunction2 {
    static func callAsFunction(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float>
}

/// y[i] = F(a[i], b[i]) over `range`, eight lanes at a time (the tail padded and cut).
@inline(__always)
func transformLanes<F: LaneFunction2>(
    _ f: F.Type, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
    _ range: Range<Int>
) {
    var i = range.lowerBound
    while i + 8 <= range.upperBound {
        let va = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
        let vb = UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(y + i).storeBytes(of: F.callAsFunction(va, vb), as: SIMD8<Float>.self)
        i += 8
    }
    if i < range.upperBound {
        let n = range.upperBound - i
        storeLanes(F.callAsFunction(loadLanes(a, i, n), loadLanes(b, i, n)), y, i, n)
    }
}

/// y[i] = F(x[i]) over `range`, eight lanes at a time (the tail padded and cut).
@inline(__always)
func transformLanes<F: LaneFunction>(
    _ f: F.Type, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ range: Range<Int>
) {
    var i = range.lowerBound
    while i + 8 <= range.upperBound {
        UnsafeMutableRawPointer(y + i).storeBytes(
            of: F.callAsFunction(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)), as: SIMD8<Float>.self)
        i += 8
    }
    if i < range.upperBound {
        let n = range.upperBound - i
        storeLanes(F.callAsFunction(loadLanes(x, i, n)), y, i, n)
    }
}

@inline(__always)
func loadLanes(_ p: UnsafePointer<Float>, _ i: Int, _ n: Int) -> SIMD8<Float> {
    if n == 8 { return UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self) }
    var v = SIMD8<Float>(repeating: 0)
    for k in 0..<n { v[k] = p[i + k] }
    return v
}

@inline(__always)
func storeLanes(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ i: Int, _ n: Int) {
    if n == 8 {
        UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: SIMD8<Float>.self)
        return
    }
    for k in 0..<n { p[i + k] = v[k] }
}

/// a * b + c, one fused instruction where the build targets FMA hardware (Package.swift defines
/// SFKD_FMA for its default Haswell target); elsewhere a multiply and an add, since a fused
/// multiply-add without hardware support is a slow library call per lane.
@inline(__always)
func multiplyAdd<Lanes: SIMD>(_ a: Lanes, _ b: Lanes, _ c: Lanes) -> Lanes where Lanes.Scalar == Float {
    #if SFKD_FMA
        // Through C (CVector): Swift's own addingProduct on SIMD types is a loop over lanes that
        // is not reliably vectorised. The type tests fold away in specialised code.
        if Lanes.self == SIMD8<Float>.self {
            return unsafeBitCast(
                sfkd_fma8(
                    unsafeBitCast(a, to: SIMD8<Float>.self), unsafeBitCast(b, to: SIMD8<Float>.self),
                    unsafeBitCast(c, to: SIMD8<Float>.self)), to: Lanes.self)
        }
        if Lanes.self == SIMD16<Float>.self {
            return unsafeBitCast(
                sfkd_fma16(
                    unsafeBitCast(a, to: SIMD16<Float>.self), unsafeBitCast(b, to: SIMD16<Float>.self),
                    unsafeBitCast(c, to: SIMD16<Float>.self)), to: Lanes.self)
        }
        return c.addingProduct(a, b)
    #else
        return a * b + c
    #endif
}
