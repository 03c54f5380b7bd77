import Foundation
import Tensors
import TestSupport
import XCTest

final class SoftmaxAndLossTests: XCTestCase {
    func testSoftmaxAndLogSoftmax() {
        let x = randomTensor([3, 2, 5], seed: 1, range: -3...3)
        checkGradients([x]) { softmax(x) }
        checkGradients([x]) { logSoftmax(x) }
        let y = withNoGrad { softmax(x) }
        let row = (0..<5).map { Foundation.exp(Double(x.data[5 + $0])) }
        let total = row.reduce(0, +)
        for i in 0..<5 { XCTAssertEqual(Double(y.data[5 + i]), row[i] / total, accuracy: 1e-6) }
        // Stable for large logits.
        let large = Tensor([1000, 1001, 1002], shape: [1, 3])
        XCTAssertTrue(withNoGrad { logSoftmax(large) }.array.allSatisfy { $0.isFinite })
    }

    func testCrossEntropyWithLabelSmoothing() {
        let logits = randomTensor([4, 6], seed: 2, range: -2...2)
        let labels = [0, 5, 2, 3]
        for smoothing: Float in [0, 0.1] {
            let loss = withNoGrad { crossEntropy(logits, labels: labels, labelSmoothing: smoothing) }
            var expected = 0.0
            for b in 0..<4 {
                let row = (0..<6).map { Double(logits.data[b * 6 + $0]) }
                let lse = Foundation.log(row.map { Foundation.exp($0) }.reduce(0, +))
                for c in 0..<6 {
                    let q = (c == labels[b] ? 1 - Double(smoothing) : 0) + Double(smoothing) / 6
                    expected -= q * (row[c] - lse)
                }
            }
            XCTAssertEqual(Double(loss.item), expected / 4, accuracy: 1e-5)
            checkGradients([logits]) { crossEntropy(logits, labels: labels, labelSmoothing: smoothing) }
        }
    }

    /// The targets are often a temporary of the caller's: backward must still read them after
    /// their tensor is gone and its buffer has gone back to the pool and been reused.
    func testSoftTargetGradientOutlivesTheTargetsTensor() {
        let logits = randomTensor([4, 6], seed: 12)
        func targets() -> Tensor { withNoGrad { softmax(randomTensor([4, 6], seed: 13, requiresGrad: false)) } }
        let expected = targets().array
        logits.grad = nil
        Tape.current.reset()
        let loss = crossEntropy(logits, softTargets: targets())
        let reuse = (0..<8).map { _ in Tensor(Array(repeating: 1000, count: 24), shape: [4, 6]) }
        loss.backward()
        let p = withNoGrad { softmax(logits) }.array
        let gradient = (0..<24).map { (p[$0] - expected[$0]) / 4 }
        XCTAssertLessThan(maxDifference(logits.grad!, gradient), 1e-6)
        XCTAssertEqual(reuse.count, 8)
        logits.grad = nil
    }

    func testSoftTargetCrossEntropyAndKL() {
        let logits = randomTensor([3, 5], seed: 3, range: -2...2)
        let targetLogits = randomTensor([3, 5], seed: 4, range: -2...2, requiresGrad: false)
        let targets = withNoGrad { softmax(targetLogits) }
        checkGradients([logits]) { crossEntropy(logits, softTargets: targets) }
        let logInput = withNoGrad { logSoftmax(logits) }
        logInput.requiresGrad = true
        let probabilities = withNoGrad { softmax(targetLogits) }
        probabilities.requiresGrad = true
        // A smaller step: log(target) curves sharply for small probabilities.
        checkGradients([logInput, probabilities], step: 2e-3) {
            klDivergence(logInput: logInput, target: probabilities)
        }
        // KL(p || q) computed directly.
        let kl = withNoGrad { klDivergence(logInput: logInput, target: probabilities) }
        var expected = 0.0
        for i in 0..<15 {
            expected +=
                Double(probabilities.data[i])
                * (Foundation.log(Double(probabilities.data[i])) - Double(logInput.data[i]))
        }
        XCTAssertEqual(Double(kl.item), expected / 3, accuracy: 1e-5)
        // Soft-target CE with one-hot targets equals hard CE.
        let oneHot = Tensor(zeros: [3, 5])
        for (b, label) in [1, 4, 0].enumerated() { oneHot.data[b * 5 + label] = 1 }
        let soft = withNoGrad { crossEntropy(logits, softTargets: oneHot) }
        let hard = withNoGrad { crossEntropy(logits, labels: [1, 4, 0]) }
        XCTAssertEqual(soft.item, hard.item, accuracy: 1e-6)
    }

    func testMSE() {
        let a = randomTensor([3, 4], seed: 5), b = randomTensor([3, 4], seed: 6)
        checkGradients([a, b]) { mseLoss(a, b) }
    }
}
