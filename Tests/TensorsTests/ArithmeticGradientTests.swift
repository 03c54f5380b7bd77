import Tensors
import TestSupport
import XCTest

final class ArithmeticGradientTests: XCTestCase {
    func testBroadcastingBinaryOps() {
        let pairs: [([Int], [Int])] = [
            ([3, 4, 5], [4, 1]), ([2, 3], [3]), ([2, 3, 4, 5], [1, 3, 1, 1]), ([4, 1, 3], [1, 5, 1]), ([6], [6]),
        ]
        for (i, (sa, sb)) in pairs.enumerated() {
            let a = randomTensor(sa, seed: UInt64(i)), b = randomTensor(sb, seed: UInt64(i + 10))
            checkGradients([a, b]) { a + b }
            checkGradients([a, b]) { a - b }
            checkGradients([a, b]) { a * b }
            let positive = randomTensor(sb, seed: UInt64(i + 20), range: 0.5...2)
            checkGradients([a, positive]) { a / positive }
        }
    }

    func testBroadcastForwardMatchesLoops() {
        let a = randomTensor([2, 3, 4], seed: 1), b = randomTensor([3, 1], seed: 2)
        let c = withNoGrad { a * b }
        var expected: [Float] = []
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 { expected.append(a.data[i * 12 + j * 4 + k] * b.data[j]) } } }
        XCTAssertEqual(maxDifference(c, expected), 0)
    }

    func testScalarOpsAndSameTensorTwice() {
        let a = randomTensor([3, 5], seed: 3)
        checkGradients([a]) { a * 3 + 1 }
        checkGradients([a]) { 2 - a / 4 }
        checkGradients([a]) { a * a }  // two contributions to one input
        checkGradients([a]) { -a }
    }

    func testUnaryFunctions() {
        let x = randomTensor([4, 7], seed: 4, range: -2...2)
        // Keep ReLU and abs inputs away from the kink.
        let awayFromZero = randomTensor([4, 7], seed: 5, range: 0.2...1.5)
        let signs = Tensor((0..<28).map { $0 % 3 == 0 ? -1 : 1 }, shape: [4, 7])
        let mixed = withNoGrad { awayFromZero * signs }
        mixed.requiresGrad = true
        checkGradients([mixed]) { relu(mixed) }
        // Values on both sides of both kinks of ReLU6, none within the finite-difference step.
        let aroundSix = Tensor(
            [-1, -0.3, 0.4, 2, 5.5, 5.9, 6.1, 6.5, 7, 3, -2, 0.1], shape: [3, 4], requiresGrad: true)
        checkGradients([aroundSix]) { relu6(aroundSix) }
        checkGradients([mixed]) { abs(mixed) }
        checkGradients([x]) { gelu(x) }
        checkGradients([x]) { sigmoid(x) }
        checkGradients([x]) { tanh(x) }
        checkGradients([x]) { exp(x) }
        checkGradients([x]) { square(x) }
        let positive = randomTensor([4, 7], seed: 6, range: 0.5...3)
        checkGradients([positive]) { log(positive) }
        checkGradients([positive]) { sqrt(positive) }
    }

    /// ConvNeXt's block end in one op equals its composition (scale, permute to channels first,
    /// add the residual), forward and gradients; and its gradients agree with finite differences.
    func testLayerScaledResidualIsTheScaledPermutedSum() {
        let residual = randomTensor([2, 5, 3, 4], seed: 30), branch = randomTensor([2, 3, 4, 5], seed: 31)
        let gamma = randomTensor([5], seed: 32)
        checkGradients([residual, branch, gamma]) {
            layerScaledResidual(residual, branchChannelsLast: branch, gamma: gamma)
        }
        assertSameOutputAndGradients([residual, branch, gamma], seed: 33) {
            layerScaledResidual(residual, branchChannelsLast: branch, gamma: gamma)
        } composedOf: {
            (branch * gamma).permute([0, 3, 1, 2]) + residual
        }
    }

    func testGELUIsTheErfForm() {
        let x = Tensor([-3, -1, -0.5, 0, 0.5, 1, 3], shape: [7])
        let y = withNoGrad { gelu(x) }
        // PyTorch: torch.nn.functional.gelu(torch.tensor([...])) with approximate="none"
        let expected: [Float] = [-0.00404969, -0.15865529, -0.15426877, 0, 0.34573123, 0.84134471, 2.99595031]
        XCTAssertLessThan(maxDifference(y, expected), 1e-6)
    }

    func testReductions() {
        let x = randomTensor([3, 4, 5], seed: 7)
        checkGradients([x]) { x.sum() }
        checkGradients([x]) { x.sum(axes: [1]) }
        checkGradients([x]) { x.sum(axes: [0, 2], keepDims: true) }
        checkGradients([x]) { x.mean(axes: [-1]) }
        checkGradients([x]) { x.mean() }
        let s = withNoGrad { x.sum(axes: [1]) }
        XCTAssertEqual(s.shape, [3, 5])
        var expected: [Float] = []
        for i in 0..<3 {
            for k in 0..<5 {
                var t: Float = 0
                for j in 0..<4 { t += x.data[i * 20 + j * 5 + k] }
                expected.append(t)
            }
        }
        XCTAssertLessThan(maxDifference(s, expected), 1e-5)
    }

    func testBroadcastTo() {
        let x = randomTensor([3, 1, 2], seed: 8)
        checkGradients([x]) { x.broadcast(to: [4, 3, 5, 2]) }
    }
}
