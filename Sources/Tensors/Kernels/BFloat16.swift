/// bfloat16: the upper 16 bits of a float32 (8 exponent bits, 7 mantissa bits). Conversions
/// round to nearest with ties to even, as PyTorch's and oneDNN's do; a NaN stays a quiet NaN.
public enum BFloat16 {
    /// float32 -> bfloat16 bits.
    @inline(__always)
    public static func word(_ value: Float) -> UInt16 {
        UInt16(truncatingIfNeeded: roundedBits(value.bitPattern) &>> 16)
    }

    /// bfloat16 bits -> float32 (exact).
    @inline(__always)
    public static func float(_ word: UInt16) -> Float { Float(bitPattern: UInt32(word) << 16) }

    /// `value` rounded to the nearest bfloat16, as a float32.
    @inline(__always)
    public static func rounded(_ value: Float) -> Float { float(word(value)) }

    /// The rounded bits in the upper half (branch-free, so the loops below vectorise).
    @inline(__always)
    private static func roundedBits(_ bits: UInt32) -> UInt32 {
        let isNaN = bits & 0x7FFF_FFFF > 0x7F80_0000
        return isNaN ? (bits | 0x0040_0000) & 0xFFFF_0000 : (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) & 0xFFFF_0000
    }

    /// Writes `count` values of `source`, each rounded to bfloat16, as float32 into `target`
    /// (which may be `source`).
    public static func round(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, count: Int) {
        source.withMemoryRebound(to: UInt32.self, capacity: count) { input in
            target.withMemoryRebound(to: UInt32.self, capacity: count) { output in
                convert(count) { start, end in
                    for i in start..<end { output[i] = roundedBits(input[i]) }
                }
            }
        }
    }

    /// Writes `count` values of `source` as bfloat16 words into `target`.
    public static func words(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<UInt16>, count: Int) {
        convert(count) { start, end in wordsOnThisThread(source + start, into: target + start, count: end - start) }
    }

    /// `words` on the calling thread (for a kernel's own parallel loop).
    @inline(__always)
    static func wordsOnThisThread(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<UInt16>, count: Int)
    {
        source.withMemoryRebound(to: UInt32.self, capacity: count) { input in
            for i in 0..<count { target[i] = UInt16(truncatingIfNeeded: roundedBits(input[i]) &>> 16) }
        }
    }

    /// Writes `count` bfloat16 words as float32 (exact).
    public static func widen(_ source: UnsafePointer<UInt16>, into target: UnsafeMutablePointer<Float>, count: Int) {
        target.withMemoryRebound(to: UInt32.self, capacity: count) { output in
            convert(count) { start, end in
                for i in start..<end { output[i] = UInt32(source[i]) << 16 }
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

extension BFloat16 {
    /// bfloat16 words held for a tensor's lifetime.
    /// In the tensors' buffer pool (two words per float), so that the copies a step saves for
    /// backward reuse its memory like the activations they stand for.
    public final class Words: @unchecked Sendable {
        public let pointer: UnsafeMutablePointer<UInt16>
        public let count: Int
        private let storage: Storage

        convenience init(_ values: UnsafePointer<Float>, count: Int) {
            self.init(uninitializedCount: count)
            BFloat16.words(values, into: pointer, count: count)
        }

        /// Room for `count` words, for a kernel to write.
        init(uninitializedCount count: Int) {
            self.count = count
            storage = Storage(count: (count + 1) / 2)
            pointer = UnsafeMutableRawPointer(storage.base).bindMemory(to: UInt16.self, capacity: 2 * storage.capacity)
        }
    }
}

extension Tensor {
    /// Converts this weight to bfloat16 once, for every bfloat16 product that takes it from now
    /// on (a frozen teacher's weights: they never change afterwards, which is the caller's
    /// promise; a trained weight changes every step and is converted per product).
    public func keepBFloat16Copy() {
        ensure(!requiresGrad, "keepBFloat16Copy: a weight that trains changes every step")
        bfloat16Copy = BFloat16.Words(data, count: count)
    }

    /// A copy with every value rounded to bfloat16 (still float32 storage).
    public func roundedToBFloat16() -> Tensor {
        let copy = Tensor(uninitializedShape: shape)
        BFloat16.round(data, into: copy.data, count: count)
        return copy
    }
}
