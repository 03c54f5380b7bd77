import Foundation

/// A small, fast, splittable generator (xoroshiro128++ seeded by SplitMix64). Its state is two
/// 64-bit words, so checkpoints can save and restore it exactly.
public struct RandomGenerator: RandomNumberGenerator, Sendable, Equatable {
    public var state: (UInt64, UInt64)

    public init(seed: UInt64) {
        var mixer = seed
        state = (Self.splitMix(&mixer), Self.splitMix(&mixer))
        if state == (0, 0) { state.0 = 1 }
    }

    public init(state: (UInt64, UInt64)) { self.state = state }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.state == rhs.state }

    static func splitMix(_ x: inout UInt64) -> UInt64 {
        x &+= 0x9E37_79B9_7F4A_7C15
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// xoroshiro128++
    public mutating func next() -> UInt64 {
        let s0 = state.0
        var s1 = state.1
        let result = ((s0 &+ s1) << 17 | (s0 &+ s1) >> 47) &+ s0
        s1 ^= s0
        state.0 = (s0 << 49 | s0 >> 15) ^ s1 ^ (s1 << 21)
        state.1 = s1 << 28 | s1 >> 36
        return result
    }

    /// Uniform in [0, 1).
    @inline(__always)
    public mutating func nextUniform() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// Standard normal (Box-Muller).
    public mutating func nextNormal() -> Float {
        var u1 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        if u1 < 1e-300 { u1 = 1e-300 }
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        return Float((-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2))
    }

    /// A generator derived from this seed and a stream of keys, independent of call order:
    /// used where randomness must be a pure function of (seed, epoch, index).
    public static func derived(seed: UInt64, _ keys: UInt64...) -> RandomGenerator {
        var mixer = seed
        var combined = splitMix(&mixer)
        for key in keys {
            var k = key ^ combined
            combined = splitMix(&k)
        }
        return RandomGenerator(seed: combined)
    }
}

@inline(__always) func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Foundation.cos(x) }

/// The process-wide generator used by initialisers and dropout; seeded by the trainer.
public enum GlobalRandom {
    nonisolated(unsafe) public static var generator = RandomGenerator(seed: 0)

    public static func seed(_ seed: UInt64) { generator = RandomGenerator(seed: seed) }
}
