import CBLAS
import CDNNL
import Dispatch

/// C = alpha * op(A) * op(B) + beta * C, all row-major. With several threads (and outside a
/// parallel loop) a large product is split into row blocks of C (column blocks when C has few
/// rows), one single-threaded call per thread, on the library `GEMMKernel` chooses.
public func gemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    let threads = Threads.count
    if threads > 1 && m * n * k >= 1 << 18 && !ParallelRegion.isInside {
        if m >= 32 {
            inBlocks(of: m, threads: threads, multiple: 8) { start, rows in
                gemmOnThisThread(
                    transposeA: transposeA, transposeB: transposeB, m: rows, n: n, k: k, alpha: alpha,
                    a: transposeA ? a + start : a + start * lda, lda: lda, b: b, ldb: ldb,
                    beta: beta, c: c + start * ldc, ldc: ldc)
            }
            return
        }
        if n >= 64 {
            inBlocks(of: n, threads: threads, multiple: 16) { start, columns in
                gemmOnThisThread(
                    transposeA: transposeA, transposeB: transposeB, m: m, n: columns, k: k, alpha: alpha,
                    a: a, lda: lda, b: transposeB ? b + start * ldb : b + start, ldb: ldb,
                    beta: beta, c: c + start, ldc: ldc)
            }
            return
        }
    }
    gemmOnThisThread(
        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
        a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
}

/// Splits 0..<total into one block per thread (sizes rounded up to `multiple`) and runs `body`
/// on each block concurrently, each inside a parallel region (its GEMM stays on its thread).
private func inBlocks(of total: Int, threads: Int, multiple: Int, _ body: (_ start: Int, _ count: Int) -> Void) {
    let size = ((total + threads - 1) / threads + multiple - 1) / multiple * multiple
    DispatchQueue.concurrentPerform(iterations: (total + size - 1) / size) { part in
        let start = part * size
        ParallelRegion.run { body(start, min(size, total - start)) }
    }
}

@inline(__always)
func gemmOnThisThread(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    if GEMMKernel.effective == .oneDNN {
        OneDNN.stayOnThisThread()
        let status = dnnl_sgemm(
            transposeA ? 84 : 78, transposeB ? 84 : 78, Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b,
            Int64(ldb), beta, c, Int64(ldc))
        ensure(status == dnnl_success, "oneDNN sgemm \(m)x\(n)x\(k) failed with status \(status.rawValue)")
        return
    }
    cblas_sgemm(
        CblasRowMajor,
        transposeA ? CblasTrans : CblasNoTrans,
        transposeB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}
