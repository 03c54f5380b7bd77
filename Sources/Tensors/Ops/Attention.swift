import Foundation

/// softmax(Q K^T * scale) V over (..., N, D) queries, keys and values (leading dimensions are
/// batch and heads). Forward and backward are fused: the attention matrix is kept once for
/// backward instead of three separate op records.
public func scaledDotProductAttention(query q: Tensor, key k: Tensor, value v: Tensor, scale: Float? = nil) -> Tensor {
    ensure(q.rank >= 2 && q.shape == k.shape && k.shape == v.shape,
                 "scaledDotProductAttention: query \(q.shape), key \(k.shape), value \(v.shape) must match")
    let n = q.shape[q.rank - 2], d = q.shape[q.rank - 1]
    let heads = q.count / (n * d)
    let factor = scale ?? 1 / Float(d).squareRoot()
    let probabilities = Tensor(uninitializedShape: [heads, n, n])
    let out = Tensor(uninitializedShape: q.shape)
    let pq = q.data, pk = k.data, pv = v.data, pp = probabilities.data, po = out.data
    // Small per-head GEMMs: OpenBLAS runs these single-threaded, so heads go in parallel.
    parallelFor(heads) { range in
        for h in range {
            let scores = pp + h * n * n
            gemm(transposeA: false, transposeB: true, m: n, n: n, k: d, alpha: factor,
                 a: pq + h * n * d, lda: d, b: pk + h * n * d, ldb: d, c: scores, ldc: n)
            for r in 0..<n { softmaxRow(scores + r * n, scores + r * n, n) }
            gemm(transposeA: false, transposeB: false, m: n, n: d, k: n,
                 a: scores, lda: n, b: pv + h * n * d, ldb: d, c: po + h * n * d, ldc: d)
        }
    }
    Tape.current.record(out, inputs: [q, k, v]) { g in
        let pp = probabilities.data, pq = q.data, pk = k.data, pv = v.data
        let gq = Tensor(uninitializedShape: q.shape), gk = Tensor(uninitializedShape: k.shape), gv = Tensor(uninitializedShape: v.shape)
        let scratch = Tensor(uninitializedShape: [heads, n, n])
        let pg = g.data, pgq = gq.data, pgk = gk.data, pgv = gv.data, ps = scratch.data
        parallelFor(heads) { range in
            for h in range {
                let p = pp + h * n * n, dp = ps + h * n * n
                let gh = pg + h * n * d
                // dV = P^T dO
                gemm(transposeA: true, transposeB: false, m: n, n: d, k: n, a: p, lda: n, b: gh, ldb: d, c: pgv + h * n * d, ldc: d)
                // dP = dO V^T, then dS = P * (dP - rowsum(dP * P)) * scale
                gemm(transposeA: false, transposeB: true, m: n, n: n, k: d, a: gh, lda: d, b: pv + h * n * d, ldb: d, c: dp, ldc: n)
                for r in 0..<n {
                    let pr = p + r * n, dr = dp + r * n
                    let inner = dot(pr, dr, count: n)
                    for c in 0..<n { dr[c] = pr[c] * (dr[c] - inner) * factor }
                }
                // dQ = dS K, dK = dS^T Q
                gemm(transposeA: false, transposeB: false, m: n, n: d, k: n, a: dp, lda: n, b: pk + h * n * d, ldb: d, c: pgq + h * n * d, ldc: d)
                gemm(transposeA: true, transposeB: false, m: n, n: d, k: n, a: dp, lda: n, b: pq + h * n * d, ldb: d, c: pgk + h * n * d, ldc: d)
            }
        }
        accumulateGradient(q, gq)
        accumulateGradient(k, gk)
        accumulateGradient(v, gv)
    }
    return out
}
