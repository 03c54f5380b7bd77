import Foundation
import Tensors
import XCTest

final class AttentionTests: XCTestCase {
    func testForwardMatchesNaiveAttention() {
        let q = randomTensor([2, 3, 5, 4], seed: 1), k = randomTensor([2, 3, 5, 4], seed: 2), v = randomTensor([2, 3, 5, 4], seed: 3)
        let out = withNoGrad { scaledDotProductAttention(query: q, key: k, value: v) }
        var expected: [Float] = []
        for h in 0..<6 {
            for i in 0..<5 {
                var scores = (0..<5).map { j -> Double in
                    (0..<4).reduce(0.0) { $0 + Double(q.data[h * 20 + i * 4 + $1]) * Double(k.data[h * 20 + j * 4 + $1]) } / 2
                }
                let m = scores.max()!
                scores = scores.map { Foundation.exp($0 - m) }
                let total = scores.reduce(0, +)
                for d in 0..<4 {
                    expected.append(Float((0..<5).reduce(0.0) { $0 + scores[$1] / total * Double(v.data[h * 20 + $1 * 4 + d]) }))
                }
            }
        }
        XCTAssertLessThan(maxDifference(out, expected), 1e-5)
    }

    func testGradients() {
        let q = randomTensor([2, 2, 5, 3], seed: 4), k = randomTensor([2, 2, 5, 3], seed: 5), v = randomTensor([2, 2, 5, 3], seed: 6)
        checkGradients([q, k, v]) { scaledDotProductAttention(query: q, key: k, value: v) }
        checkGradients([q, k, v]) { scaledDotProductAttention(query: q, key: k, value: v, scale: 0.7) }
    }
}

final class PackedAttentionTests: XCTestCase {
    func testPackedEqualsSplitPermuteAndAttend() {
        let qkv = randomTensor([2, 5, 3 * 6], seed: 7)
        let packed = withNoGrad { packedSelfAttention(qkv, heads: 2) }
        let reference = withNoGrad { () -> Tensor in
            let parts = qkv.reshape([2, 5, 3, 2, 3]).permute([2, 0, 3, 1, 4]).split([1, 1, 1], axis: 0).map { $0.reshape([2, 2, 5, 3]) }
            return scaledDotProductAttention(query: parts[0], key: parts[1], value: parts[2]).permute([0, 2, 1, 3]).reshape([2, 5, 6])
        }
        XCTAssertLessThan(maxDifference(packed, reference.array), 1e-6)
    }

    func testPackedGradients() {
        let qkv = randomTensor([2, 4, 3 * 4], seed: 8)
        checkGradients([qkv]) { packedSelfAttention(qkv, heads: 2) }
    }
}
