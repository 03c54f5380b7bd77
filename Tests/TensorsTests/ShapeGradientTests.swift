import Tensors
import TestSupport
import XCTest

final class ShapeGradientTests: XCTestCase {
    func testReshapeAndPermute() {
        let x = randomTensor([2, 3, 4, 5], seed: 1)
        checkGradients([x]) { x.reshape([6, -1]) * x.reshape([6, 20]) }
        checkGradients([x]) { x.permute([2, 0, 3, 1]) }
        checkGradients([x]) { x.transposed(1, 3) }
        let p = withNoGrad { x.permute([3, 1, 0, 2]) }
        XCTAssertEqual(p.shape, [5, 3, 2, 4])
        // p[a, b, c, d] = x[c, b, d, a]
        XCTAssertEqual(p.data[((4 * 3 + 2) * 2 + 1) * 4 + 3], x.data[((1 * 3 + 2) * 4 + 3) * 5 + 4])
    }

    func testRollAndGatherRows() {
        let x = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        XCTAssertEqual(x.rolled(by: 1, axis: 1).array, [3, 1, 2, 6, 4, 5], "torch.roll(x, 1, dims=1)")
        XCTAssertEqual(x.rolled(by: -4, axis: 1).array, [2, 3, 1, 5, 6, 4], "torch.roll(x, -4, dims=1)")
        XCTAssertEqual(x.rolled(by: 3, axis: 1).array, x.array)
        XCTAssertEqual(x.gatherRows([1, 1, 0]).array, [4, 5, 6, 4, 5, 6, 1, 2, 3])
        let a = randomTensor([3, 4, 5], seed: 30)
        checkGradients([a]) { a.rolled(by: 2, axis: 1).rolled(by: -1, axis: 2) }
        checkGradients([a]) { a.gatherRows([2, 0, 2, 1, 2]) }
    }

    func testSliceConcatSplitPad() {
        let x = randomTensor([3, 5, 4], seed: 2)
        let y = randomTensor([3, 2, 4], seed: 3)
        checkGradients([x]) { x.slice(axis: 1, 1..<4) }
        checkGradients([x, y]) { concat([x, y, x], axis: 1) }
        checkGradients([x]) {
            let parts = x.split([2, 3], axis: 1)
            return parts[0].sum(axes: [1], keepDims: true) * parts[1]
        }
        checkGradients([x]) { x.padded([(1, 2), (0, 3)]) }
        let padded = withNoGrad { x.padded([(1, 0), (0, 1)]) }
        XCTAssertEqual(padded.shape, [3, 6, 5])
        XCTAssertEqual(padded.data[0], 0)
        XCTAssertEqual(padded.data[5], x.data[0])  // row 1, column 0 of the first plane
        let joined = withNoGrad { concat([x, y], axis: 1) }
        XCTAssertEqual(joined.shape, [3, 7, 4])
        XCTAssertEqual(joined.data[28 + 5 * 4], y.data[8])
    }
}
