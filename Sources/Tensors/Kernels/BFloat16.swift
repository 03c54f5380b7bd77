/// bfloat16: the upper 16 bits of a float32 (8 exponent bits, 7 mantissa bits). Conversions
/// round to nearest with ties to even, as PyTorch's and oneDNN's do; a NaN stays a quiet NaN.
public enum BFloat16 {
    /// float32 -> bfloat16 bits.
    @inline(__always)
    public static func word(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    /// bfloat16 bits -> float32 (exact).
    @inline(__always)
    public static func float(_ word: UInt16) -> Float { Float(bitPattern: UInt32(word) << 16) }

    /// `value` rounded to the nearest bfloat16, as a float32.
    @inline(__always)
    public static func rounded(_ value: Float) -> Float { float(word(value)) }

    /// Sixteen lanes at once: the rounded bits in the upper half of each lane.
    @inline(__always)
    private static func roundedBits(_ bits: SIMD16<UInt32>) -> SIMD16<UInt32> {
        let exponent = bits & 0x7F80_0000, mantissa = bits & 0x007F_FFFF
        let isNaN = (exponent .== 0x7F80_0000) .& (mantissa .!= 0)
        let rounded = (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) & 0xFFFF_0000
        return rounded.replacing(with: (bits & 0xFFFF_0000) | 0x0040_0000, where: isNaN)
    }

    /// Writes `count` values of `source`, each rounded to bfloat16, as float32 into `target`
    /// (which may be `source`).
    public static func round(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, count: Int) {
        convert(count) { start, end in
            var i = start
            source.withMemoryRebound(to: UInt32.self, capacity: count) { input in
                target.withMemoryRebound(to: UInt32.self, capacity: count) { output in
                    while i + 16 <= end {
                        let bits = UnsafeRawPointer(input + i).loadUnaligned(as: SIMD16<UInt32>.self)
                        UnsafeMutableRawPointer(output + i).storeBytes(of: roundedBits(bits), as: SIMD16<UInt32>.self)
                        i += 16
                    }
                }
            }
            while i < end {
                target[i] = rounded(source[i])
                i += 1
            }
        }
    }

    /// Writes `count` values of `source` as bfloat16 words into `target`.
    public static func words(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<UInt16>, count: Int) {
        convert(count) { start, end in
            var i = start
            source.withMemoryRebound(to: UInt32.self, capacity: count) { input in
                while i + 16 <= end {
                    let bits = UnsafeRawPointer(input + i).loadUnaligned(as: SIMD16<UInt32>.self)
                    let words = SIMD16<UInt16>(truncatingIfNeeded: roundedBits(bits) &>> 16)
                    UnsafeMutableRawPointer(target + i).storeBytes(of: words, as: SIMD16<UInt16>.self)
                    i += 16
                }
            }
            while i < end {
                target[i] = word(source[i])
                i += 1
            }
        }
    }

    /// Memory-bound: split across threads only when large, in blocks of whole vectors.
    private static func convert(_ count: Int, _ body: (_ start: Int, _ end: Int) -> Void) {
        parallelFor((count + 15) / 16, grain: 4096) { blocks in
            body(blocks.lowerBound * 16, min(count, blocks.upperBound * 16))
        }
    }
}

extension Tensor {
    /// A copy with every value rounded to bfloat16 (still float32 storage).
    public func roundedToBFloat16() -> Tensor {
        let copy = Tensor(uninitializedShape: shape)
        BFloat16.round(data, into: copy.data, count: count)
        return copy
    }
}
