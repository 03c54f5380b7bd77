import Foundation
import Tensors
import TestSupport
import XCTest

final class AttentionTests: XCTestCase {
    /// Narrow heads (width <= 8 and <= 16 use different vector widths) take the vectorised
    /// loops, wider ones the GEMM path; token counts below, at and past the 32-key block.
    let shapes: [(n: Int, d: Int)] = [(5, 4), (37, 8), (70, 13), (7, 20)]

    func testForwardMatchesNaiveAttention() {
        for (n, width) in shapes {
            let q = randomTensor([2, 3, n, width], seed: 1), k = randomTensor([2, 3, n, width], seed: 2),
                v = randomTensor([2, 3, n, width], seed: 3)
            let out = withNoGrad { scaledDotProductAttention(query: q, key: k, value: v) }
            var expected: [Float] = []
            let slice = n * width
            for h in 0..<6 {
                for i in 0..<n {
                    var scores = (0..<n).map { j -> Double in
                        (0..<width).reduce(0.0) {
                            $0 + Double(q.data[h * slice + i * width + $1]) * Double(k.data[h * slice + j * width + $1])
                        } / Double(width).squareRoot()
                    }
                    let m = scores.max()!
                    scores = scores.map { Foundation.exp($0 - m) }
                    let total = scores.reduce(0, +)
                    for d in 0..<width {
                        expected.append(
                            Float(
                                (0..<n).reduce(0.0) {
                                    $0 + scores[$1] / total * Double(v.data[h * slice + $1 * width + d])
                                }))
                    }
                }
            }
            XCTAssertLessThan(maxDifference(out, expected), 1e-5, "width \(width)")
        }
    }

    func testGradients() {
        // Shorter than the forward shapes (the debug build runs the vector loops slowly), still
        // past one 32-key block for the 8-wide case.
        for (n, width) in [(5, 4), (33, 8), (9, 12), (7, 20)] {
            let q = randomTensor([2, 2, n, width], seed: 4), k = randomTensor([2, 2, n, width], seed: 5),
                v = randomTensor([2, 2, n, width], seed: 6)
            checkGradients([q, k, v]) { scaledDotProductAttention(query: q, key: k, value: v) }
            checkGradients([q, k, v]) { scaledDotProductAttention(query: q, key: k, value: v, scale: 0.7) }
        }
    }

    /// The fused backward against autograd through batched matmul and softmax, at sizes too
    /// long for finite differences in a debug build: several four-row blocks plus a tail, for
    /// both vector widths and the GEMM path.
    func testBackwardMatchesComposedOps() {
        for (n, width) in [(37, 8), (70, 13), (23, 20)] {
            let q = randomTensor([3, n, width], seed: 11), k = randomTensor([3, n, width], seed: 12),
                v = randomTensor([3, n, width], seed: 13)
            let seed = randomTensor([3, n, width], seed: 14, requiresGrad: false)
            scaledDotProductAttention(query: q, key: k, value: v).backward(seed: seed)
            let fused = [q.grad!.array, k.grad!.array, v.grad!.array]
            for t in [q, k, v] { t.zeroGrad() }
            let scores = batchedMatmul(q, k, transposeB: true) * (1 / Float(width).squareRoot())
            matmul(softmax(scores), v).backward(seed: seed)
            for (index, name) in ["query", "key", "value"].enumerated() {
                XCTAssertLessThan(
                    maxDifference([q, k, v][index].grad!, fused[index]), 1e-5,
                    "\(name) gradient, \(n) tokens x \(width)")
            }
        }
    }
}

final class PackedAttentionTests: XCTestCase {
    func testPackedEqualsSplitPermuteAndAttend() {
        let qkv = randomTensor([2, 5, 3 * 6], seed: 7)
        let packed = withNoGrad { packedSelfAttention(qkv, heads: 2) }
        let reference = withNoGrad { () -> Tensor in
            let parts = qkv.reshape([2, 5, 3, 2, 3]).permute([2, 0, 3, 1, 4]).split([1, 1, 1], axis: 0).map {
                $0.reshape([2, 2, 5, 3])
            }
            return scaledDotProductAttention(query: parts[0], key: parts[1], value: parts[2]).permute([0, 2, 1, 3])
                .reshape([2, 5, 6])
        }
        XCTAssertLessThan(maxDifference(packed, reference.array), 1e-6)
    }

    func testPackedGradients() {
        let qkv = randomTensor([2, 4, 3 * 4], seed: 8)
        checkGradients([qkv]) { packedSelfAttention(qkv, heads: 2) }
        let long = randomTensor([1, 34, 3 * 16], seed: 10)
        checkGradients([long]) { packedSelfAttention(long, heads: 2) }
        let wide = randomTensor([2, 3, 3 * 36], seed: 9)
        checkGradients([wide]) { packedSelfAttention(wide, heads: 2) }
    }

    /// Swin's window attention: a learned (heads, N, N) bias and a constant (windows, N, N)
    /// mask added to the scores, against the same sum written with batched matmul and softmax;
    /// narrow heads (width 4 here) take the GEMM path when terms are present.
    func testBiasAndMaskMatchComposedOps() {
        let batch = 4, windows = 2, n = 6, heads = 2
        for width in [4, 20] {
            let qkv = randomTensor([batch, n, 3 * heads * width], seed: 20)
            let bias = randomTensor([heads, n, n], seed: 21)
            let mask = Tensor(zeros: [windows, n, n])
            for i in 0..<mask.count where i % 3 == 0 { mask.data[i] = -100 }
            let fused = packedSelfAttention(qkv, heads: heads, bias: bias, mask: mask)
            let seed = randomTensor(fused.shape, seed: 22, requiresGrad: false)
            fused.backward(seed: seed)
            let fusedGradients = [qkv.grad!.array, bias.grad!.array]
            qkv.zeroGrad()
            bias.zeroGrad()
            let parts = qkv.reshape([batch, n, 3, heads, width]).permute([2, 0, 3, 1, 4]).split([1, 1, 1], axis: 0).map
            { $0.reshape([batch * heads, n, width]) }
            let scores = batchedMatmul(parts[0], parts[1], transposeB: true) * (1 / Float(width).squareRoot())
            let terms = bias.reshape([1, 1, heads, n, n]) + mask.reshape([1, windows, 1, n, n])
            let biased = scores.reshape([batch / windows, windows, heads, n, n]) + terms
            let reference = batchedMatmul(softmax(biased.reshape([batch * heads, n, n])), parts[2]).reshape([
                batch, heads, n, width,
            ]).permute([0, 2, 1, 3]).reshape([batch, n, heads * width])
            XCTAssertLessThan(maxDifference(fused, reference.array), 1e-5, "width \(width): forward")
            reference.backward(seed: seed)
            XCTAssertLessThan(maxDifference(qkv.grad!, fusedGradients[0]), 1e-5, "width \(width): qkv gradient")
            XCTAssertLessThan(maxDifference(bias.grad!, fusedGradients[1]), 1e-5, "width \(width): bias gradient")
        }
    }

    /// Without a tape (a frozen teacher) the scores live in a per-thread scratch instead of the
    /// probabilities kept for backward: the same outputs, bit for bit, at both precisions and for
    /// heads on the GEMM path (width 20, 70 tokens) and the narrow loops (width 4).
    func testOutputsWithoutATapeEqualThoseRecorded() {
        let batch = 4, windows = 2, heads = 2
        for (n, width) in [(6, 4), (70, 20)] {
            let qkv = randomTensor([batch, n, 3 * heads * width], seed: 23)
            let bias = randomTensor([heads, n, n], seed: 24)
            let mask = Tensor(zeros: [windows, n, n])
            for i in 0..<mask.count where i % 5 == 0 { mask.data[i] = -100 }
            for precision in Precision.allCases {
                Autocast.run(precision) {
                    let recorded = packedSelfAttention(qkv, heads: heads, bias: bias, mask: mask)
                    let unrecorded = withNoGrad { packedSelfAttention(qkv, heads: heads, bias: bias, mask: mask) }
                    XCTAssertEqual(unrecorded.array, recorded.array, "\(precision), width \(width): packed")
                    let parts = withNoGrad {
                        qkv.reshape([batch, n, 3, heads, width]).permute([2, 0, 3, 1, 4]).split([1, 1, 1], axis: 0)
                            .map { $0.reshape([batch, heads, n, width]) }
                    }
                    for part in parts { part.requiresGrad = true }
                    let attend = { scaledDotProductAttention(query: parts[0], key: parts[1], value: parts[2]) }
                    XCTAssertEqual(withNoGrad(attend).array, attend().array, "\(precision), width \(width)")
                }
            }
        }
    }

    func testBiasGradientsAgainstFiniteDifferences() {
        let qkv = randomTensor([4, 5, 3 * 2 * 4], seed: 23), bias = randomTensor([2, 5, 5], seed: 24)
        let mask = Tensor(zeros: [2, 5, 5])
        for i in 0..<mask.count where i % 4 == 1 { mask.data[i] = -3 }
        checkGradients([qkv, bias]) { packedSelfAttention(qkv, heads: 2, bias: bias, mask: mask) }
    }
}
