import Tensors

/// Deterministic test inputs: uniform in `range`, from `seed`.
public func randomTensor(_ shape: [Int], seed: UInt64, range: ClosedRange<Float> = -1...1, requiresGrad: Bool = true)
    -> Tensor
{
    var generator = RandomGenerator(seed: seed)
    let t = Tensor(uninitializedShape: shape)
    for i in 0..<t.count {
        t.data[i] = range.lowerBound + (range.upperBound - range.lowerBound) * generator.nextUniform()
    }
    t.requiresGrad = requiresGrad
    return t
}

/// Largest absolute difference between a tensor and expected values (infinite for NaN).
public func maxDifference(_ t: Tensor, _ expected: [Float]) -> Float {
    precondition(t.count == expected.count, "maxDifference: \(t.count) values against \(expected.count)")
    var worst: Float = 0
    for i in 0..<t.count {
        let difference = Swift.abs(t.data[i] - expected[i])
        worst = difference.isFinite ? max(worst, difference) : .infinity
    }
    return worst
}
