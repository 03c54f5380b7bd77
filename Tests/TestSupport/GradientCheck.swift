import Tensors
import XCTest

/// Central finite-difference check of every input's gradient. The scalar is Σ f(x) * R for a
/// fixed random R, accumulated in Double; up to `samples` elements of each input are probed.
public func checkGradients(
    _ inputs: [Tensor], step h: Float = 1e-2, tolerance: Double = 2e-2, samples: Int = 40,
    file: StaticString = #filePath, line: UInt = #line, _ function: () -> Tensor
) {
    for x in inputs { x.grad = nil }
    Tape.current.reset()
    let output = function()
    let weights = randomTensor(output.shape, seed: 99, requiresGrad: false)
    output.backward(seed: weights)
    func objective() -> Double {
        withNoGrad {
            let y = function()
            var total = 0.0
            for i in 0..<y.count { total += Double(y.data[i]) * Double(weights.data[i]) }
            return total
        }
    }
    for (index, x) in inputs.enumerated() {
        guard let analytic = x.grad else {
            XCTFail("input \(index) of shape \(x.shape) received no gradient", file: file, line: line)
            continue
        }
        let strideBetween = max(1, x.count / samples)
        var worst = 0.0
        var scaleOfGradient = 1e-3
        for i in 0..<x.count { scaleOfGradient = max(scaleOfGradient, Double(Swift.abs(analytic.data[i]))) }
        for i in stride(from: 0, to: x.count, by: strideBetween) {
            let original = x.data[i]
            x.data[i] = original + h
            let plus = objective()
            x.data[i] = original - h
            let minus = objective()
            x.data[i] = original
            let numeric = (plus - minus) / (2 * Double(h))
            let error = Swift.abs(numeric - Double(analytic.data[i])) / max(scaleOfGradient, Swift.abs(numeric))
            // NaN compares false, so it must be turned into a failure explicitly.
            worst = error.isFinite ? max(worst, error) : .infinity
        }
        XCTAssertLessThan(
            worst, tolerance,
            "input \(index) of shape \(x.shape): analytic and numeric gradients differ (relative error \(worst))",
            file: file, line: line)
    }
    for x in inputs { x.grad = nil }
}

/// An op against the composition it replaces: the same output and the same gradient of every
/// input (within `tolerance`), both backpropagating one fixed random output gradient.
public func assertSameOutputAndGradients(
    _ inputs: [Tensor], seed: UInt64, tolerance: Float = 1e-5, file: StaticString = #filePath, line: UInt = #line,
    _ op: () -> Tensor, composedOf composition: () -> Tensor
) {
    func run(_ function: () -> Tensor) -> [[Float]] {
        for x in inputs { x.grad = nil }
        let y = function()
        y.backward(seed: randomTensor(y.shape, seed: seed, requiresGrad: false))
        return [y.array] + inputs.map { $0.grad!.array }
    }
    let results = [run(op), run(composition)]
    for (index, (a, b)) in zip(results[0], results[1]).enumerated() {
        XCTAssertLessThan(
            maxDifference(Tensor(a, shape: [a.count]), b), tolerance, "output or gradient \(index)", file: file,
            line: line)
    }
}
