/// Contiguous vector kernels. Plain pointer loops: the release build vectorises them, and
/// they are memory-bound, so the loop shape matters more than the instruction set.

@inline(__always)
public func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int)
{
    for i in 0..<count { out[i] = a[i] + b[i] }
}

@inline(__always)
public func addInPlace(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { a[i] += b[i] }
}

/// a += alpha * b
@inline(__always)
public func addScaledInPlace(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, alpha: Float, count: Int) {
    for i in 0..<count { a[i] += alpha * b[i] }
}

@inline(__always)
public func scale(_ a: UnsafePointer<Float>, by factor: Float, into out: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { out[i] = a[i] * factor }
}

@inline(__always)
public func sum(_ a: UnsafePointer<Float>, count: Int) -> Float {
    // Eight partial sums: vectorisable, and more accurate than one running sum.
    var partial = SIMD8<Float>(repeating: 0)
    var i = 0
    while i + 8 <= count {
        partial += UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
        i += 8
    }
    var total = partial.sum()
    while i < count {
        total += a[i]
        i += 1
    }
    return total
}

@inline(__always)
public func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
    var partial = SIMD8<Float>(repeating: 0)
    var i = 0
    while i + 8 <= count {
        partial +=
            UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
            * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
        i += 8
    }
    var total = partial.sum()
    while i < count {
        total += a[i] * b[i]
        i += 1
    }
    return total
}

/// Sum of squares in double precision (used for norms, where Float would lose digits).
public func sumOfSquares(_ a: UnsafePointer<Float>, count: Int) -> Double {
    var total = 0.0
    var start = 0
    while start < count {
        let end = min(count, start + 4096)
        total += Double(dot(a + start, a + start, count: end - start))
        start = end
    }
    return total
}
