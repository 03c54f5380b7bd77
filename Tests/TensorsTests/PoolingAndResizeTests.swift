import Tensors
import TestSupport
import XCTest

final class PoolingAndResizeTests: XCTestCase {
    /// Distinct values so every max is unique and finite differences do not cross a tie.
    func distinct(_ shape: [Int], seed: UInt64) -> Tensor {
        let count = shape.reduce(1, *)
        var generator = RandomGenerator(seed: seed)
        var values = (0..<count).map { Float($0) * 0.37 }
        values.shuffle(using: &generator)
        return Tensor(values, shape: shape, requiresGrad: true)
    }

    func testMaxPool() {
        let x = distinct([2, 3, 7, 6], seed: 1)
        checkGradients([x]) { maxPool2d(x, kernel: (2, 2)) }
        checkGradients([x]) { maxPool2d(x, kernel: (3, 3), stride: (2, 2), padding: (1, 1)) }
        let y = withNoGrad { maxPool2d(x, kernel: (3, 3), stride: (2, 2), padding: (1, 1)) }
        XCTAssertEqual(y.shape, [2, 3, 4, 3])
        // Output (1, 2, 2, 1) covers rows 3..5, columns 1..3 of plane (1, 2).
        var best = -Float.infinity
        for r in 3...5 { for c in 1...3 { best = max(best, x.data[(1 * 3 + 2) * 42 + r * 6 + c]) } }
        XCTAssertEqual(y.data[(1 * 3 + 2) * 12 + 2 * 3 + 1], best)
    }

    func testAveragePools() {
        let x = randomTensor([2, 2, 7, 5], seed: 2)
        checkGradients([x]) { avgPool2d(x, kernel: (2, 2)) }
        checkGradients([x]) { avgPool2d(x, kernel: (3, 3), stride: (2, 2), padding: (1, 1)) }
        checkGradients([x]) { adaptiveAvgPool2d(x, outputSize: (3, 2)) }
        checkGradients([x]) { adaptiveAvgPool2d(x, outputSize: (1, 1)) }
        // Padding counts in the divisor: the corner window sees 4 of 9 cells.
        let padded = withNoGrad { avgPool2d(x, kernel: (3, 3), stride: (2, 2), padding: (1, 1)) }
        let corner = (x.data[0] + x.data[1] + x.data[5] + x.data[6]) / 9
        XCTAssertEqual(padded.data[0], corner, accuracy: 1e-6)
        // Adaptive bounds: 7 rows into 3 -> [0,3), [2,5), [4,7).
        let adaptive = withNoGrad { adaptiveAvgPool2d(x, outputSize: (3, 2)) }
        var total: Float = 0
        for r in 2..<5 { for c in 2..<5 { total += x.data[r * 5 + c] } }
        XCTAssertEqual(adaptive.data[1 * 2 + 1], total / 9, accuracy: 1e-5)
    }

    func testBilinearResize() {
        let x = randomTensor([2, 2, 5, 4], seed: 3)
        checkGradients([x]) { bilinearResize(x, size: (8, 7)) }
        checkGradients([x]) { bilinearResize(x, size: (3, 2)) }
        // PyTorch: F.interpolate(torch.arange(16.).view(1,1,4,4), size=(2,2), mode="bilinear", align_corners=False)
        // gives [[2.5, 4.5], [10.5, 12.5]]; for size (3, 5) the first row is computed by hand below.
        let ramp = Tensor((0..<16).map(Float.init), shape: [1, 1, 4, 4])
        XCTAssertEqual(withNoGrad { bilinearResize(ramp, size: (2, 2)) }.array, [2.5, 4.5, 10.5, 12.5])
        let up = withNoGrad { bilinearResize(ramp, size: (3, 5)) }
        XCTAssertLessThan(
            maxDifference(up.slice(axis: 2, 0..<1), [0.666667, 1.366667, 2.166667, 2.966667, 3.666667]), 1e-5)
    }

    func testDropout() {
        let x = randomTensor([4, 50], seed: 4)
        var generator = RandomGenerator(seed: 5)
        let y = dropout(x, probability: 0.3, training: true, generator: &generator)
        let zeros = y.array.filter { $0 == 0 }.count
        XCTAssertGreaterThan(zeros, 30)
        XCTAssertLessThan(zeros, 90)
        for i in 0..<x.count where y.data[i] != 0 { XCTAssertEqual(y.data[i], x.data[i] / 0.7, accuracy: 1e-5) }
        y.backward(seed: Tensor(repeating: 1, shape: y.shape))
        for i in 0..<x.count { XCTAssertEqual(x.grad!.data[i], y.data[i] == 0 ? 0 : 1 / 0.7, accuracy: 1e-5) }
        x.grad = nil
        XCTAssertTrue(dropout(x, probability: 0.3, training: false, generator: &generator) === x)
    }
}
