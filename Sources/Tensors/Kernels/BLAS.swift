import CBLAS
import Dispatch

/// C = alpha * op(A) * op(B) + beta * C, all row-major. With several threads (and outside a
/// parallel loop) a large product is split into row blocks of C (column blocks when C has few
/// rows), one single-threaded OpenBLAS call per thread.
public func gemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    let threads = Threads.count
    if threads > 1 && m * n * k >= 1 << 18 && !ParallelRegion.isInside {
        if m >= 32 {
            let rows = ((m + threads - 1) / threads + 7) / 8 * 8
            DispatchQueue.concurrentPerform(iterations: (m + rows - 1) / rows) { part in
                let start = part * rows, count = min(rows, m - start)
                ParallelRegion.run {
                    gemmOnThisThread(transposeA: transposeA, transposeB: transposeB, m: count, n: n, k: k, alpha: alpha,
                                     a: transposeA ? a + start : a + start * lda, lda: lda, b: b, ldb: ldb,
                                     beta: beta, c: c + start * ldc, ldc: ldc)
                }
            }
            return
        }
        if n >= 64 {
            let columns = ((n + threads - 1) / threads + 15) / 16 * 16
            DispatchQueue.concurrentPerform(iterations: (n + columns - 1) / columns) { part in
                let start = part * columns, count = min(columns, n - start)
                ParallelRegion.run {
                    gemmOnThisThread(transposeA: transposeA, transposeB: transposeB, m: m, n: count, k: k, alpha: alpha,
                                     a: a, lda: lda, b: transposeB ? b + start * ldb : b + start, ldb: ldb,
                                     beta: beta, c: c + start, ldc: ldc)
                }
            }
            return
        }
    }
    gemmOnThisThread(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                     a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
}

@inline(__always)
func gemmOnThisThread(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    cblas_sgemm(
        CblasRowMajor,
        transposeA ? CblasTrans : CblasNoTrans,
        transposeB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}
