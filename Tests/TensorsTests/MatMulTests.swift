import Tensors
import TestSupport
import XCTest

final class MatMulTests: XCTestCase {
    func testMatmulForwardAndGradients() {
        let a = randomTensor([5, 7], seed: 1), b = randomTensor([7, 3], seed: 2)
        let c = withNoGrad { matmul(a, b) }
        var expected: [Float] = []
        for i in 0..<5 {
            for j in 0..<3 {
                var t: Float = 0
                for k in 0..<7 { t += a.data[i * 7 + k] * b.data[k * 3 + j] }
                expected.append(t)
            }
        }
        XCTAssertLessThan(maxDifference(c, expected), 1e-5)
        checkGradients([a, b]) { matmul(a, b) }
        let a3 = randomTensor([2, 5, 7], seed: 3)
        checkGradients([a3, b]) { matmul(a3, b) }
    }

    /// Large products are split across sfkd's threads in row blocks (or column blocks when C has
    /// few rows), with leading dimensions wider than the matrices; each split must equal the loop,
    /// on each library and on one thread as on three.
    func testSplitGEMMMatchesTheNaiveProductForEveryTransposeAndShape() {
        let saved = Threads.count
        defer { Threads.configure(saved) }
        for kernel in [GEMMKernel.openBLAS, .oneDNN] {
            for threads in [1, 3] {
                Threads.configure(threads)
                GEMMKernel.pinned(kernel) { checkGEMMAgainstTheLoop("\(kernel) on \(threads) threads") }
            }
        }
    }

    private func checkGEMMAgainstTheLoop(_ label: String) {
        for (m, n, k) in [(203, 77, 61), (9, 1000, 53), (1, 1, 1)] {
            for transposeA in [false, true] {
                for transposeB in [false, true] {
                    let lda = (transposeA ? m : k) + 3, ldb = (transposeB ? k : n) + 2, ldc = n + 5
                    let a = randomTensor([(transposeA ? k : m) * lda], seed: 7),
                        b = randomTensor([(transposeB ? n : k) * ldb], seed: 8)
                    let c = randomTensor([m * ldc], seed: 9), original = c.array
                    gemm(
                        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.5, a: a.data,
                        lda: lda,
                        b: b.data, ldb: ldb, beta: 2, c: c.data, ldc: ldc)
                    var worst: Float = 0
                    for i in 0..<m {
                        for j in 0..<ldc {
                            guard j < n else {
                                XCTAssertEqual(
                                    c.data[i * ldc + j], original[i * ldc + j], "padding must stay untouched")
                                continue
                            }
                            var t: Float = 0
                            for p in 0..<k {
                                t +=
                                    (transposeA ? a.data[p * lda + i] : a.data[i * lda + p])
                                    * (transposeB ? b.data[j * ldb + p] : b.data[p * ldb + j])
                            }
                            worst = max(worst, abs(c.data[i * ldc + j] - (0.5 * t + 2 * original[i * ldc + j])))
                        }
                    }
                    XCTAssertLessThan(
                        worst, 1e-3, "\(label): m \(m) n \(n) k \(k) transposeA \(transposeA) transposeB \(transposeB)")
                }
            }
        }
    }

    func testBatchedMatmulAllTransposes() {
        for transposeA in [false, true] {
            for transposeB in [false, true] {
                let a = randomTensor(transposeA ? [3, 4, 5] : [3, 5, 4], seed: 4)
                let b = randomTensor(transposeB ? [3, 6, 4] : [3, 4, 6], seed: 5)
                let c = withNoGrad { batchedMatmul(a, b, transposeA: transposeA, transposeB: transposeB) }
                XCTAssertEqual(c.shape, [3, 5, 6])
                var expected: [Float] = []
                for n in 0..<3 {
                    for i in 0..<5 {
                        for j in 0..<6 {
                            var t: Float = 0
                            for k in 0..<4 {
                                let av = transposeA ? a.data[n * 20 + k * 5 + i] : a.data[n * 20 + i * 4 + k]
                                let bv = transposeB ? b.data[n * 24 + j * 4 + k] : b.data[n * 24 + k * 6 + j]
                                t += av * bv
                            }
                            expected.append(t)
                        }
                    }
                }
                XCTAssertLessThan(maxDifference(c, expected), 1e-5, "transposeA \(transposeA) transposeB \(transposeB)")
                checkGradients([a, b]) { batchedMatmul(a, b, transposeA: transposeA, transposeB: transposeB) }
            }
        }
    }

    func testLinear() {
        let x = randomTensor([2, 3, 5], seed: 6), w = randomTensor([4, 5], seed: 7), b = randomTensor([4], seed: 8)
        checkGradients([x, w, b]) { linear(x, weight: w, bias: b) }
        checkGradients([x, w]) { linear(x, weight: w, bias: nil) }
        let y = withNoGrad { linear(x, weight: w, bias: b) }
        var t = b.data[2]
        for k in 0..<5 { t += x.data[5 + k] * w.data[2 * 5 + k] }
        XCTAssertEqual(y.data[4 + 2], t, accuracy: 1e-5)
    }

    /// A linear layer over the token axis equals `linear` on the transposed tokens, transposed
    /// back (ResMLP's cross-patch layer as timm writes it), forward and gradients; and its
    /// gradients agree with finite differences.
    func testLinearAcrossTokensIsLinearOnTheTransposedTokens() {
        let x = randomTensor([3, 6, 10], seed: 9), w = randomTensor([4, 6], seed: 10), b = randomTensor([4], seed: 11)
        checkGradients([x, w, b]) { linearAcrossTokens(x, weight: w, bias: b) }
        checkGradients([x, w]) { linearAcrossTokens(x, weight: w, bias: nil) }
        XCTAssertEqual(withNoGrad { linearAcrossTokens(x, weight: w, bias: b) }.shape, [3, 4, 10])
        assertSameOutputAndGradients([x, w, b], seed: 12) {
            linearAcrossTokens(x, weight: w, bias: b)
        } composedOf: {
            linear(x.transposed(1, 2), weight: w, bias: b).transposed(1, 2)
        }
    }
}
