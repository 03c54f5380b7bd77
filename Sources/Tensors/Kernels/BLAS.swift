import CBLAS
import CDNNL
import Dispatch

/// C = alpha * op(A) * op(B) + beta * C, all row-major. With several threads (and outside a
/// parallel loop) a large product is split into row blocks of C (column blocks when C has few
/// rows), one single-threaded call per thread, on the library `GEMMKernel` chooses. At
/// `.bfloat16` (see `Autocast`) A and B are rounded to bfloat16 and the products accumulate in
/// float32: on oneDNN's bfloat16 kernels where the CPU has them, otherwise by the float32
/// kernels on the rounded values. `aWords`, `bWords`: A or B already in bfloat16 (a constant
/// weight's `bfloat16Copy`, an input an op saved for backward; dense), used by the native
/// kernels instead of converting it again.
public func gemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, precision: Precision = .float32,
    aWords: BFloat16.Words? = nil, bWords: BFloat16.Words? = nil
) {
    guard m > 0 && n > 0 else { return }
    let product = Product(
        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, lda: lda, ldb: ldb,
        beta: beta, ldc: ldc)
    if precision == .bfloat16 && k > 0 {
        product.inBFloat16(a: a, b: b, c: c, aWords: aWords, bWords: bWords)
        return
    }
    product.inBlocks { rows, columns in
        gemmOnThisThread(
            transposeA: transposeA, transposeB: transposeB, m: rows.count, n: columns.count, k: k, alpha: alpha,
            a: product.rowsOfA(a, rows), lda: lda, b: product.columnsOfB(b, columns), ldb: ldb, beta: beta,
            c: c + rows.lowerBound * ldc + columns.lowerBound, ldc: ldc)
    }
}

/// The shape of one `gemm` call, and how it splits across threads.
private struct Product {
    let transposeA, transposeB: Bool
    let m, n, k: Int
    let alpha: Float
    let lda, ldb: Int
    let beta: Float
    let ldc: Int

    /// Runs `body` on blocks of C's rows and columns: one block per thread for a large product
    /// outside a parallel loop, else the whole of C on this thread.
    func inBlocks(_ body: (_ rows: Range<Int>, _ columns: Range<Int>) -> Void) {
        let threads = Threads.count
        if threads > 1 && m * n * k >= 1 << 18 && !ParallelRegion.isInside {
            if m >= 32 {
                splitInto(m, threads: threads, multiple: 8) { body($0, 0..<n) }
                return
            }
            if n >= 64 {
                splitInto(n, threads: threads, multiple: 16) { body(0..<m, $0) }
                return
            }
        }
        body(0..<m, 0..<n)
    }

    func rowsOfA<T>(_ a: UnsafePointer<T>, _ rows: Range<Int>) -> UnsafePointer<T> {
        transposeA ? a + rows.lowerBound : a + rows.lowerBound * lda
    }

    func columnsOfB<T>(_ b: UnsafePointer<T>, _ columns: Range<Int>) -> UnsafePointer<T> {
        transposeB ? b + columns.lowerBound * ldb : b + columns.lowerBound
    }

    /// The stored (rows, columns) of A and of B: op(A) is m x k, op(B) is k x n.
    var storedA: (rows: Int, columns: Int) { transposeA ? (k, m) : (m, k) }
    var storedB: (rows: Int, columns: Int) { transposeB ? (n, k) : (k, n) }

    /// The product of A and B rounded to bfloat16, accumulated in float32. Each operand is
    /// rounded into a dense copy of just its rows and columns (an attention head's slice of a
    /// packed qkv, say), then multiplied.
    func inBFloat16(
        a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, aWords: BFloat16.Words?,
        bWords: BFloat16.Words?
    ) {
        let (rowsA, columnsA) = storedA, (rowsB, columnsB) = storedB
        if BFloat16Arithmetic.effective == .emulated {
            let roundedA = Tensor(uninitializedShape: [rowsA * columnsA])
            let roundedB = Tensor(uninitializedShape: [rowsB * columnsB])
            // Held to the end: read through pointers, they must not go back to the pool early.
            defer { withExtendedLifetime((roundedA, roundedB)) {} }
            Self.copy(rowsA, columnsA, from: a, ld: lda) { BFloat16.round($0, into: roundedA.data + $1, count: $2) }
            Self.copy(rowsB, columnsB, from: b, ld: ldb) { BFloat16.round($0, into: roundedB.data + $1, count: $2) }
            gemm(
                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: roundedA.data,
                lda: columnsA, b: roundedB.data, ldb: columnsB, beta: beta, c: c, ldc: ldc)
            return
        }
        let countA = rowsA * columnsA, countB = rowsB * columnsB
        let convertedA = aWords.map { lda == columnsA && $0.count == countA } ?? false
        let convertedB = bWords.map { ldb == columnsB && $0.count == countB } ?? false
        // Two words per float of a pooled buffer.
        let sizeA = convertedA ? 0 : (countA + 1) / 2
        let words = Tensor(uninitializedShape: [max(1, sizeA + (convertedB ? 0 : (countB + 1) / 2))])
        defer { withExtendedLifetime(words) {} }
        words.data.withMemoryRebound(to: UInt16.self, capacity: 2 * words.count) { words in
            let wordsA = convertedA ? aWords!.pointer : words
            if !convertedA {
                Self.copy(rowsA, columnsA, from: a, ld: lda) { BFloat16.words($0, into: wordsA + $1, count: $2) }
            }
            let wordsB = convertedB ? bWords!.pointer : words + 2 * sizeA
            if !convertedB {
                Self.copy(rowsB, columnsB, from: b, ld: ldb) { BFloat16.words($0, into: wordsB + $1, count: $2) }
            }
            let dense = Product(
                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, lda: columnsA,
                ldb: columnsB, beta: beta, ldc: ldc)
            dense.inBlocks { rows, columns in
                OneDNN.stayOnThisThread()
                let status = dnnl_gemm_bf16bf16f32(
                    transposeA ? 84 : 78, transposeB ? 84 : 78, Int64(rows.count), Int64(columns.count), Int64(k),
                    alpha, dense.rowsOfA(UnsafePointer(wordsA), rows), Int64(columnsA),
                    dense.columnsOfB(UnsafePointer(wordsB), columns), Int64(columnsB), beta,
                    c + rows.lowerBound * ldc + columns.lowerBound, Int64(ldc))
                ensure(status == dnnl_success, "oneDNN bf16 gemm \(m)x\(n)x\(k) failed with status \(status.rawValue)")
            }
        }
    }

    /// Hands `convert` each stored row of a rows x columns matrix at leading dimension `ld`
    /// (all at once when the rows are contiguous) with its offset in a dense copy.
    private static func copy(
        _ rows: Int, _ columns: Int, from source: UnsafePointer<Float>, ld: Int,
        _ convert: (_ from: UnsafePointer<Float>, _ offset: Int, _ count: Int) -> Void
    ) {
        if ld == columns { return convert(source, 0, rows * columns) }
        for row in 0..<rows { convert(source + row * ld, row * columns, columns) }
    }
}

/// Splits 0..<total into one block per thread (sizes rounded up to `multiple`) and runs `body`
/// on each block concurrently, each inside a parallel region (its GEMM stays on its thread).
private func splitInto(_ total: Int, threads: Int, multiple: Int, _ body: (Range<Int>) -> Void) {
    let size = ((total + threads - 1) / threads + multiple - 1) / multiple * multiple
    DispatchQueue.concurrentPerform(iterations: (total + size - 1) / size) { part in
        let start = part * size
        ParallelRegion.run { body(start..<min(total, start + size)) }
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
