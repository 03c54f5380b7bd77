import Tensors
import TestSupport
import XCTest

/// The multiply-adds `FLOPCounter` sums for MFU, against the textbook count of each op.
final class FLOPCounterTests: XCTestCase {
    func testEachCountedOpAddsItsMultiplyAdds() {
        let x = Tensor(repeating: 0.5, shape: [2, 3, 5, 5]), w = Tensor(repeating: 0.1, shape: [4, 3, 3, 3])
        XCTAssertEqual(FLOPCounter.multiplyAdds { _ = conv2d(x, weight: w, padding: (1, 1)) }, 2 * 4 * 5 * 5 * 3 * 9)
        // Strided and grouped: output 3x3, each output reads 3/3 = 1 input channel.
        let depthwise = Tensor(repeating: 0.1, shape: [3, 1, 3, 3])
        XCTAssertEqual(
            FLOPCounter.multiplyAdds { _ = conv2d(x, weight: depthwise, stride: (2, 2), padding: (1, 1), groups: 3) },
            2 * 3 * 3 * 3 * 9)
        let rows = Tensor(repeating: 1, shape: [2, 6, 7]), weight = Tensor(repeating: 1, shape: [8, 7])
        XCTAssertEqual(FLOPCounter.multiplyAdds { _ = linear(rows, weight: weight, bias: nil) }, 12 * 7 * 8)
        XCTAssertEqual(FLOPCounter.multiplyAdds { _ = matmul(rows, Tensor(repeating: 1, shape: [7, 4])) }, 12 * 7 * 4)
        XCTAssertEqual(FLOPCounter.multiplyAdds { _ = batchedMatmul(rows, rows, transposeB: true) }, 2 * 6 * 6 * 7)
        // Attention: QK^T and PV, each tokens^2 x width per head.
        let qkv = Tensor(repeating: 0.1, shape: [2, 5, 3 * 8])
        XCTAssertEqual(FLOPCounter.multiplyAdds { _ = packedSelfAttention(qkv, heads: 2) }, 2 * 2 * 2 * 5 * 5 * 4)
        let q = Tensor(repeating: 0.1, shape: [3, 5, 4])
        XCTAssertEqual(
            FLOPCounter.multiplyAdds { _ = scaledDotProductAttention(query: q, key: q, value: q) }, 2 * 3 * 5 * 5 * 4)
        // Backward passes and ops outside a count add nothing.
        let a = Tensor(repeating: 1, shape: [4, 4])
        a.requiresGrad = true
        let y = matmul(a, a)
        XCTAssertEqual(FLOPCounter.multiplyAdds { y.sum().backward() }, 0)
        XCTAssertEqual(FLOPCounter.multiplyAdds {}, 0)
    }
}
