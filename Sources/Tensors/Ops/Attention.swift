import Foundation

/// Where each (batch, head) slice of queries, keys, values and outputs lives: a base offset
/// per slice and a row stride, so the same kernel serves contiguous (B, H, N, D) tensors and
/// the packed (B, N, 3C) output of a qkv projection without any permute or split copies.
struct AttentionLayout {
    let batch, heads, tokens, width: Int
    let queryOffset, keyOffset, valueOffset: (Int, Int) -> Int
    let inputStride: Int
    let outputOffset: (Int, Int) -> Int
    let outputStride: Int
}

/// softmax(Q K^T * scale) V for every (batch, head), forward and backward fused; the attention
/// probabilities are kept once for backward.
private func attention(_ layout: AttentionLayout, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                       out: UnsafeMutablePointer<Float>, probabilities pp: UnsafeMutablePointer<Float>, factor: Float) {
    let n = layout.tokens, d = layout.width, heads = layout.heads
    let ld = layout.inputStride
    // Small per-head GEMMs: each thread takes whole heads and runs its GEMMs on one core.
    withSingleThreadedBLAS {
        parallelFor(layout.batch * heads) { range in
            let narrow = d <= SmallWidth.limit
            let scratch = narrow ? Tensor(uninitializedShape: [2, d, n]) : nil
            for index in range {
                let b = index / heads, h = index % heads
                let scores = pp + index * n * n
                if let scratch {
                    let kt = scratch.data, vt = scratch.data + d * n
                    SmallWidth.transpose(k + layout.keyOffset(b, h), rows: n, width: d, stride: ld, into: kt)
                    SmallWidth.transpose(v + layout.valueOffset(b, h), rows: n, width: d, stride: ld, into: vt)
                    SmallWidth.rowsTimesTransposed(q + layout.queryOffset(b, h), stride: ld, transposed: kt, rows: n, width: d, columns: n, scale: factor, into: scores)
                    for r in 0..<n { softmaxRow(scores + r * n, scores + r * n, n) }
                    SmallWidth.rowDots(scores, transposed: vt, rows: n, width: d, columns: n, into: out + layout.outputOffset(b, h), stride: layout.outputStride)
                    continue
                }
                gemm(transposeA: false, transposeB: true, m: n, n: n, k: d, alpha: factor,
                     a: q + layout.queryOffset(b, h), lda: ld, b: k + layout.keyOffset(b, h), ldb: ld, c: scores, ldc: n)
                for r in 0..<n { softmaxRow(scores + r * n, scores + r * n, n) }
                gemm(transposeA: false, transposeB: false, m: n, n: d, k: n,
                     a: scores, lda: n, b: v + layout.valueOffset(b, h), ldb: ld, c: out + layout.outputOffset(b, h), ldc: layout.outputStride)
            }
        }
    }
}

private func attentionBackward(_ layout: AttentionLayout, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                               probabilities pp: UnsafePointer<Float>, gradOut pg: UnsafePointer<Float>,
                               gq: UnsafeMutablePointer<Float>, gk: UnsafeMutablePointer<Float>, gv: UnsafeMutablePointer<Float>, factor: Float) {
    let n = layout.tokens, d = layout.width, heads = layout.heads
    let ld = layout.inputStride
    let scratch = Tensor(uninitializedShape: [layout.batch * heads, n, n])
    let ps = scratch.data
    withSingleThreadedBLAS {
        parallelFor(layout.batch * heads) { range in
            let narrow = d <= SmallWidth.limit
            let work = narrow ? Tensor(uninitializedShape: [5, d, n]) : nil
            for index in range {
                let b = index / heads, h = index % heads
                let p = pp + index * n * n, dp = ps + index * n * n
                let gh = pg + layout.outputOffset(b, h), ldo = layout.outputStride
                if let work {
                    let w = work.data
                    let vt = w, kt = w + d * n, accumulator = w + 2 * d * n
                    SmallWidth.transpose(v + layout.valueOffset(b, h), rows: n, width: d, stride: ld, into: vt)
                    SmallWidth.transpose(k + layout.keyOffset(b, h), rows: n, width: d, stride: ld, into: kt)
                    // dV = P^T dO, accumulated transposed: dV^T[c, :] += dO[i, c] P[i, :]
                    SmallWidth.transposedRowSums(gh, stride: ldo, matrix: p, rows: n, width: d, columns: n, into: accumulator)
                    SmallWidth.untranspose(accumulator, rows: n, width: d, into: gv + layout.valueOffset(b, h), stride: ld)
                    // dP = dO V^T
                    SmallWidth.rowsTimesTransposed(gh, stride: ldo, transposed: vt, rows: n, width: d, columns: n, scale: 1, into: dp)
                    for r in 0..<n {
                        let pr = p + r * n, dr = dp + r * n
                        let inner = dot(pr, dr, count: n)
                        for c in 0..<n { dr[c] = pr[c] * (dr[c] - inner) * factor }
                    }
                    // dQ = dS K, dK = dS^T Q
                    SmallWidth.rowDots(dp, transposed: kt, rows: n, width: d, columns: n, into: gq + layout.queryOffset(b, h), stride: ld)
                    SmallWidth.transposedRowSums(q + layout.queryOffset(b, h), stride: ld, matrix: dp, rows: n, width: d, columns: n, into: accumulator)
                    SmallWidth.untranspose(accumulator, rows: n, width: d, into: gk + layout.keyOffset(b, h), stride: ld)
                    continue
                }
                // dV = P^T dO
                gemm(transposeA: true, transposeB: false, m: n, n: d, k: n, a: p, lda: n, b: gh, ldb: ldo, c: gv + layout.valueOffset(b, h), ldc: ld)
                // dP = dO V^T, then dS = P * (dP - rowsum(dP * P)) * scale
                gemm(transposeA: false, transposeB: true, m: n, n: n, k: d, a: gh, lda: ldo, b: v + layout.valueOffset(b, h), ldb: ld, c: dp, ldc: n)
                for r in 0..<n {
                    let pr = p + r * n, dr = dp + r * n
                    let inner = dot(pr, dr, count: n)
                    for c in 0..<n { dr[c] = pr[c] * (dr[c] - inner) * factor }
                }
                // dQ = dS K, dK = dS^T Q
                gemm(transposeA: false, transposeB: false, m: n, n: d, k: n, a: dp, lda: n, b: k + layout.keyOffset(b, h), ldb: ld, c: gq + layout.queryOffset(b, h), ldc: ld)
                gemm(transposeA: true, transposeB: false, m: n, n: d, k: n, a: dp, lda: n, b: q + layout.queryOffset(b, h), ldb: ld, c: gk + layout.keyOffset(b, h), ldc: ld)
            }
        }
    }
}

/// softmax(Q K^T * scale) V over (..., N, D) queries, keys and values (leading dimensions are
/// batch and heads).
public func scaledDotProductAttention(query q: Tensor, key k: Tensor, value v: Tensor, scale: Float? = nil) -> Tensor {
    ensure(q.rank >= 2 && q.shape == k.shape && k.shape == v.shape,
           "scaledDotProductAttention: query \(q.shape), key \(k.shape), value \(v.shape) must match")
    let n = q.shape[q.rank - 2], d = q.shape[q.rank - 1]
    let slices = q.count / (n * d)
    let factor = scale ?? 1 / Float(d).squareRoot()
    let contiguous: (Int, Int) -> Int = { b, _ in b * n * d }
    let layout = AttentionLayout(batch: slices, heads: 1, tokens: n, width: d, queryOffset: contiguous, keyOffset: contiguous,
                                 valueOffset: contiguous, inputStride: d, outputOffset: contiguous, outputStride: d)
    let probabilities = Tensor(uninitializedShape: [slices, n, n])
    let out = Tensor(uninitializedShape: q.shape)
    attention(layout, q: q.data, k: k.data, v: v.data, out: out.data, probabilities: probabilities.data, factor: factor)
    Tape.current.record(out, inputs: [q, k, v]) { g in
        let gq = Tensor(uninitializedShape: q.shape), gk = Tensor(uninitializedShape: k.shape), gv = Tensor(uninitializedShape: v.shape)
        attentionBackward(layout, q: q.data, k: k.data, v: v.data, probabilities: probabilities.data, gradOut: g.data,
                          gq: gq.data, gk: gk.data, gv: gv.data, factor: factor)
        accumulateGradient(q, gq)
        accumulateGradient(k, gk)
        accumulateGradient(v, gv)
    }
    return out
}

/// Multi-head self-attention on the packed output of a qkv projection: (B, N, 3C) laid out as
/// (B, N, 3, heads, C / heads), as timm's Attention reshapes it, to (B, N, C) with the heads
/// concatenated. Equal to splitting, permuting and calling `scaledDotProductAttention`, without
/// the copies.
public func packedSelfAttention(_ qkv: Tensor, heads: Int, scale: Float? = nil) -> Tensor {
    ensure(qkv.rank == 3 && qkv.shape[2] % (3 * heads) == 0, "packedSelfAttention: input \(qkv.shape) is not (B, N, 3 * C) with C divisible by \(heads) heads")
    let b = qkv.shape[0], n = qkv.shape[1], c = qkv.shape[2] / 3, d = c / heads
    let factor = scale ?? 1 / Float(d).squareRoot()
    let layout = AttentionLayout(
        batch: b, heads: heads, tokens: n, width: d,
        queryOffset: { batch, head in batch * n * 3 * c + head * d },
        keyOffset: { batch, head in batch * n * 3 * c + c + head * d },
        valueOffset: { batch, head in batch * n * 3 * c + 2 * c + head * d },
        inputStride: 3 * c,
        outputOffset: { batch, head in batch * n * c + head * d },
        outputStride: c)
    let probabilities = Tensor(uninitializedShape: [b * heads, n, n])
    let out = Tensor(uninitializedShape: [b, n, c])
    attention(layout, q: qkv.data, k: qkv.data, v: qkv.data, out: out.data, probabilities: probabilities.data, factor: factor)
    Tape.current.record(out, inputs: [qkv]) { g in
        let gqkv = Tensor(uninitializedShape: qkv.shape)
        attentionBackward(layout, q: qkv.data, k: qkv.data, v: qkv.data, probabilities: probabilities.data, gradOut: g.data,
                          gq: gqkv.data, gk: gqkv.data, gv: gqkv.data, factor: factor)
        accumulateGradient(qkv, gqkv)
    }
    return out
}

/// Attention products for narrow heads (width <= 16), where a GEMM's packing costs more than its
/// arithmetic: every loop below runs along a row of n scores, so it vectorises.
enum SmallWidth {
    static let limit = 16

    /// (rows x width, row stride `stride`) to (width x rows), packed.
    static func transpose(_ source: UnsafePointer<Float>, rows: Int, width: Int, stride: Int, into target: UnsafeMutablePointer<Float>) {
        for r in 0..<rows { for c in 0..<width { target[c * rows + r] = source[r * stride + c] } }
    }

    /// (width x rows) packed back to (rows x width) with row stride `stride`.
    static func untranspose(_ source: UnsafePointer<Float>, rows: Int, width: Int, into target: UnsafeMutablePointer<Float>, stride: Int) {
        for r in 0..<rows { for c in 0..<width { target[r * stride + c] = source[c * rows + r] } }
    }

    /// out[i, :] = scale * sum_c a[i, c] * bt[c, :] for an (rows x width) a and a (width x columns) bt.
    static func rowsTimesTransposed(_ a: UnsafePointer<Float>, stride: Int, transposed bt: UnsafePointer<Float>, rows: Int, width: Int,
                                    columns: Int, scale: Float, into out: UnsafeMutablePointer<Float>) {
        for i in 0..<rows {
            let row = out + i * columns
            let first = scale * a[i * stride]
            for j in 0..<columns { row[j] = first * bt[j] }
            for c in 1..<max(1, width) {
                let factor = scale * a[i * stride + c]
                let line = bt + c * columns
                for j in 0..<columns { row[j] += factor * line[j] }
            }
        }
    }

    /// out[i, c] = dot(m[i, :], bt[c, :]) for an (rows x columns) m and a (width x columns) bt.
    static func rowDots(_ m: UnsafePointer<Float>, transposed bt: UnsafePointer<Float>, rows: Int, width: Int, columns: Int,
                        into out: UnsafeMutablePointer<Float>, stride: Int) {
        for i in 0..<rows {
            for c in 0..<width { out[i * stride + c] = dot(m + i * columns, bt + c * columns, count: columns) }
        }
    }

    /// outT[c, :] = sum_i a[i, c] * m[i, :] for an (rows x width) a and an (rows x columns) m.
    static func transposedRowSums(_ a: UnsafePointer<Float>, stride: Int, matrix m: UnsafePointer<Float>, rows: Int, width: Int, columns: Int,
                                  into outT: UnsafeMutablePointer<Float>) {
        outT.update(repeating: 0, count: width * columns)
        for i in 0..<rows {
            let row = m + i * columns
            for c in 0..<width {
                let factor = a[i * stride + c]
                let line = outT + c * columns
                for j in 0..<columns { line[j] += factor * row[j] }
            }
        }
    }
}
