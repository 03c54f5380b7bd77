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

/// Terms added to the scaled scores before the softmax: a (heads, N, N) bias shared by every
/// batch entry (Swin's relative position bias, learned) and a constant (windows, N, N) mask for
/// batch entry b taken as mask[b % windows] (Swin's shifted-window mask: the batch holds each
/// image's windows in turn).
struct ScoreTerms {
    let bias: UnsafePointer<Float>?
    let mask: UnsafePointer<Float>?
    let windows: Int

    static let none = ScoreTerms(bias: nil, mask: nil, windows: 1)
    var isEmpty: Bool { bias == nil && mask == nil }

    func add(to scores: UnsafeMutablePointer<Float>, b: Int, h: Int, tokens n: Int) {
        if let bias { addInPlace(scores, bias + h * n * n, count: n * n) }
        if let mask { addInPlace(scores, mask + (b % windows) * n * n, count: n * n) }
    }
}

/// How attention's products run at the op's precision. At bfloat16 both products take
/// bfloat16 inputs (queries, keys, values, the probabilities and the gradients) and accumulate
/// in float32; the softmax and its gradient stay float32.
enum AttentionArithmetic: Equatable {
    case float32
    /// Each head's products on the bfloat16 GEMM, which converts its inputs per product.
    case bfloat16Products
    /// Queries, keys, values (and the output gradient) rounded once for all heads, the products
    /// in float32, the probabilities and score gradients rounded where they enter a product:
    /// the same numbers, for heads too small for the bfloat16 GEMM's conversions and calls to
    /// pay (fewer than 2^20 multiply-adds per product: Swin's windows) and for the fused
    /// narrow-head kernels (which keep the probabilities in float32).
    case roundedInputs

    init(_ precision: Precision, tokens n: Int, width d: Int, hasTerms: Bool) {
        if precision == .float32 {
            self = .float32
        } else if NarrowHeads.apply(width: d, hasTerms: hasTerms) || n * n * d < 1 << 20 {
            self = .roundedInputs
        } else {
            self = .bfloat16Products
        }
    }

    /// `tensor` as the heads read it.
    func inputs(_ tensor: Tensor) -> Tensor { self == .roundedInputs ? tensor.roundedToBFloat16() : tensor }

    var productPrecision: Precision { self == .bfloat16Products ? .bfloat16 : .float32 }

    /// The precision the backward reads queries, keys and values at (kept at it).
    var inputPrecision: Precision { self == .float32 ? .float32 : .bfloat16 }

    /// An n x n operand as a product takes it: rounded into `scratch` when the inputs are rounded.
    func operand(_ matrix: UnsafePointer<Float>, count: Int, scratch: UnsafeMutablePointer<Float>?)
        -> UnsafePointer<Float>
    {
        guard self == .roundedInputs, let scratch else { return matrix }
        BFloat16.round(matrix, into: scratch, count: count)
        return UnsafePointer(scratch)
    }
}

/// softmax(Q K^T * scale + terms) V for every (batch, head), forward and backward fused; the
/// attention probabilities are kept once for backward in `probabilities`. Without it (nothing
/// records: a frozen teacher, evaluation) each thread reuses one head's scores, which stay in
/// its cache between the two products.
private func attention(
    _ layout: AttentionLayout, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
    out: UnsafeMutablePointer<Float>, probabilities pp: UnsafeMutablePointer<Float>?, factor: Float,
    terms: ScoreTerms = .none, arithmetic: AttentionArithmetic
) {
    let n = layout.tokens, d = layout.width, heads = layout.heads
    let ld = layout.inputStride
    let narrow = NarrowHeads.apply(width: d, hasTerms: !terms.isEmpty)
    let precision = arithmetic.productPrecision
    // Small per-head GEMMs: each thread takes whole heads and runs its GEMMs on one core.
    withSingleThreadedBLAS {
        parallelFor(layout.batch * heads) { range in
            let workspace = narrow ? Tensor(uninitializedShape: [NarrowHeads.workspaceCount(tokens: n, width: d)]) : nil
            let rounded = !narrow && arithmetic == .roundedInputs ? Tensor(uninitializedShape: [n * n]) : nil
            let scratch = pp == nil ? Tensor(uninitializedShape: [n * n]) : nil
            // Their pointers outlive each use of the tensors: keep them to the chunk's end (the
            // buffers would otherwise go back to the pool, to another thread, mid-head).
            defer { withExtendedLifetime((workspace, rounded, scratch)) {} }
            for index in range {
                let b = index / heads, h = index % heads
                let scores = pp.map { $0 + index * n * n } ?? scratch!.data
                if let workspace {
                    NarrowHeads.forward(
                        layout, b: b, h: h, q: q, k: k, v: v, out: out, scores: scores, factor: factor,
                        workspace: workspace.data)
                    continue
                }
                gemm(
                    transposeA: false, transposeB: true, m: n, n: n, k: d, alpha: factor,
                    a: q + layout.queryOffset(b, h), lda: ld, b: k + layout.keyOffset(b, h), ldb: ld, c: scores, ldc: n,
                    precision: precision)
                terms.add(to: scores, b: b, h: h, tokens: n)
                for r in 0..<n { softmaxRow(scores + r * n, scores + r * n, n) }
                gemm(
                    transposeA: false, transposeB: false, m: n, n: d, k: n,
                    a: arithmetic.operand(scores, count: n * n, scratch: rounded?.data), lda: n,
                    b: v + layout.valueOffset(b, h), ldb: ld, c: out + layout.outputOffset(b, h),
                    ldc: layout.outputStride, precision: precision)
            }
        }
    }
}

/// Gradients of queries, keys and values; with `gradBias`, also of a (heads, N, N) score bias
/// (summed over the batch).
private func attentionBackward(
    _ layout: AttentionLayout, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
    probabilities pp: UnsafePointer<Float>, gradOut pg: UnsafePointer<Float>,
    gq: UnsafeMutablePointer<Float>, gk: UnsafeMutablePointer<Float>, gv: UnsafeMutablePointer<Float>, factor: Float,
    hasTerms: Bool = false, gradBias: UnsafeMutablePointer<Float>? = nil, arithmetic: AttentionArithmetic
) {
    let n = layout.tokens, d = layout.width, heads = layout.heads
    let ld = layout.inputStride
    let narrow = NarrowHeads.apply(width: d, hasTerms: hasTerms)
    let precision = arithmetic.productPrecision
    // Wide heads keep dP per head; narrow ones need only a row of it, in their workspace.
    let scratch = narrow ? nil : Tensor(uninitializedShape: [layout.batch * heads, n, n])
    withSingleThreadedBLAS {
        parallelFor(layout.batch * heads) { range in
            let workspace = narrow ? Tensor(uninitializedShape: [NarrowHeads.workspaceCount(tokens: n, width: d)]) : nil
            let rounded = !narrow && arithmetic == .roundedInputs ? Tensor(uninitializedShape: [n * n]) : nil
            defer { withExtendedLifetime((workspace, rounded)) {} }
            for index in range {
                let b = index / heads, h = index % heads
                let p = pp + index * n * n
                if let workspace {
                    NarrowHeads.backward(
                        layout, b: b, h: h, q: q, k: k, v: v, probabilities: p, gradOut: pg,
                        gq: gq, gk: gk, gv: gv, factor: factor, workspace: workspace.data)
                    continue
                }
                let dp = scratch!.data + index * n * n
                let gh = pg + layout.outputOffset(b, h), ldo = layout.outputStride
                // dV = P^T dO
                gemm(
                    transposeA: true, transposeB: false, m: n, n: d, k: n,
                    a: arithmetic.operand(p, count: n * n, scratch: rounded?.data), lda: n, b: gh, ldb: ldo,
                    c: gv + layout.valueOffset(b, h), ldc: ld, precision: precision)
                // dP = dO V^T, then dS = P * (dP - rowsum(dP * P)) * scale
                gemm(
                    transposeA: false, transposeB: true, m: n, n: n, k: d, a: gh, lda: ldo,
                    b: v + layout.valueOffset(b, h), ldb: ld, c: dp, ldc: n, precision: precision)
                for r in 0..<n {
                    let pr = p + r * n, dr = dp + r * n
                    let inner = dot(pr, dr, count: n)
                    for c in 0..<n { dr[c] = pr[c] * (dr[c] - inner) * factor }
                }
                // dQ = dS K, dK = dS^T Q (dS kept as it is for the bias gradient)
                let ds = arithmetic.operand(dp, count: n * n, scratch: rounded?.data)
                gemm(
                    transposeA: false, transposeB: false, m: n, n: d, k: n, a: ds, lda: n,
                    b: k + layout.keyOffset(b, h), ldb: ld, c: gq + layout.queryOffset(b, h), ldc: ld,
                    precision: precision)
                gemm(
                    transposeA: true, transposeB: false, m: n, n: d, k: n, a: ds, lda: n,
                    b: q + layout.queryOffset(b, h), ldb: ld, c: gk + layout.keyOffset(b, h), ldc: ld,
                    precision: precision)
            }
        }
    }
    // The bias gradient is dS before the scale, summed over the batch: per head, after the
    // parallel pass (threads own whole (batch, head) slices, not heads).
    guard let gradBias, let scratch else { return }
    let plane = n * n
    parallelFor(heads * plane, grain: 4096) { range in
        for i in range {
            let h = i / plane, e = i % plane
            var sum: Float = 0
            for b in 0..<layout.batch { sum += scratch.data[(b * heads + h) * plane + e] }
            gradBias[i] = sum / factor
        }
    }
}

/// softmax(Q K^T * scale) V over (..., N, D) queries, keys and values (leading dimensions are
/// batch and heads).
public func scaledDotProductAttention(query q: Tensor, key k: Tensor, value v: Tensor, scale: Float? = nil) -> Tensor {
    ensure(
        q.rank >= 2 && q.shape == k.shape && k.shape == v.shape,
        "scaledDotProductAttention: query \(q.shape), key \(k.shape), value \(v.shape) must match")
    let n = q.shape[q.rank - 2], d = q.shape[q.rank - 1]
    let slices = q.count / (n * d)
    let factor = scale ?? 1 / Float(d).squareRoot()
    let contiguous: (Int, Int) -> Int = { b, _ in b * n * d }
    let layout = AttentionLayout(
        batch: slices, heads: 1, tokens: n, width: d, queryOffset: contiguous, keyOffset: contiguous,
        valueOffset: contiguous, inputStride: d, outputOffset: contiguous, outputStride: d)
    let arithmetic = AttentionArithmetic(Autocast.precision, tokens: n, width: d, hasTerms: false)
    let (qIn, kIn, vIn) = [q, k, v].map(arithmetic.inputs).triple
    let recording = Tape.current.willRecord([q, k, v])
    let probabilities = recording ? Tensor(uninitializedShape: [slices, n, n]) : nil
    let out = Tensor(uninitializedShape: q.shape)
    FLOPCounter.add(2 * slices * n * n * d)
    // The rounded copies must outlive the kernel: released after their `data` is read, their
    // buffers could serve the kernel's own scratch from the pool.
    withExtendedLifetime((qIn, kIn, vIn)) {
        attention(
            layout, q: qIn.data, k: kIn.data, v: vIn.data, out: out.data,
            probabilities: probabilities?.data, factor: factor, arithmetic: arithmetic)
    }
    guard let probabilities else {
        Tape.current.countUnrecorded(.attention)
        return out
    }
    let nodes = [q, k, v].map(\.node)
    let saved = [qIn, kIn, vIn].map { SavedActivation($0, precision: arithmetic.inputPrecision) }
    Tape.current.record(out, inputs: [q, k, v], family: .attention) { g in
        let (gq, gk, gv) = nodes.map { Tensor(uninitializedShape: $0.shape) }.triple
        let values = saved.map { $0.tensor() }, gradOut = arithmetic.inputs(g)
        withExtendedLifetime((values, gradOut)) {
            let (q, k, v) = values.triple
            attentionBackward(
                layout, q: q.data, k: k.data, v: v.data, probabilities: probabilities.data,
                gradOut: gradOut.data, gq: gq.data, gk: gk.data, gv: gv.data, factor: factor,
                arithmetic: arithmetic)
        }
        for (node, gradient) in zip(nodes, [gq, gk, gv]) { accumulateGradient(node, gradient) }
    }
    return out
}

extension Array {
    fileprivate var triple: (Element, Element, Element) { (self[0], self[1], self[2]) }
}

/// Multi-head self-attention on the packed output of a qkv projection: (B, N, 3C) laid out as
/// (B, N, 3, heads, C / heads), as timm's Attention reshapes it, to (B, N, C) with the heads
/// concatenated. Equal to splitting, permuting and calling `scaledDotProductAttention`, without
/// the copies. `bias` (heads, N, N) is added to every batch entry's scores and trained (Swin's
/// relative position bias); `mask` (windows, N, N) is a constant added to entry b as
/// mask[b % windows] (Swin's shifted windows).
public func packedSelfAttention(
    _ qkv: Tensor, heads: Int, scale: Float? = nil, bias: Tensor? = nil, mask: Tensor? = nil
) -> Tensor {
    ensure(
        qkv.rank == 3 && qkv.shape[2] % (3 * heads) == 0,
        "packedSelfAttention: input \(qkv.shape) is not (B, N, 3 * C) with C divisible by \(heads) heads")
    let b = qkv.shape[0], n = qkv.shape[1], c = qkv.shape[2] / 3, d = c / heads
    if let bias {
        ensure(bias.shape == [heads, n, n], "packedSelfAttention: bias \(bias.shape) is not (\(heads), \(n), \(n))")
    }
    if let mask {
        ensure(
            mask.rank == 3 && mask.shape[1] == n && mask.shape[2] == n && mask.shape[0] >= 1 && b % mask.shape[0] == 0,
            "packedSelfAttention: mask \(mask.shape) is not (windows, \(n), \(n)) with the batch \(b) a multiple of windows"
        )
    }
    let factor = scale ?? 1 / Float(d).squareRoot()
    let layout = AttentionLayout(
        batch: b, heads: heads, tokens: n, width: d,
        queryOffset: { batch, head in batch * n * 3 * c + head * d },
        keyOffset: { batch, head in batch * n * 3 * c + c + head * d },
        valueOffset: { batch, head in batch * n * 3 * c + 2 * c + head * d },
        inputStride: 3 * c,
        outputOffset: { batch, head in batch * n * c + head * d },
        outputStride: c)
    let terms = ScoreTerms(
        bias: bias.map { UnsafePointer($0.data) }, mask: mask.map { UnsafePointer($0.data) },
        windows: mask?.shape[0] ?? 1)
    let arithmetic = AttentionArithmetic(Autocast.precision, tokens: n, width: d, hasTerms: !terms.isEmpty)
    let inputs = arithmetic.inputs(qkv)
    let recorded = [qkv] + (bias.map { [$0] } ?? [])
    let recording = Tape.current.willRecord(recorded)
    let probabilities = recording ? Tensor(uninitializedShape: [b * heads, n, n]) : nil
    let out = Tensor(uninitializedShape: [b, n, c])
    FLOPCounter.add(2 * b * heads * n * n * d)
    // As in `scaledDotProductAttention`: the rounded copy outlives the kernel.
    withExtendedLifetime(inputs) {
        attention(
            layout, q: inputs.data, k: inputs.data, v: inputs.data, out: out.data,
            probabilities: probabilities?.data, factor: factor, terms: terms, arithmetic: arithmetic)
    }
    guard let probabilities else {
        Tape.current.countUnrecorded(.attention)
        return out
    }
    let (node, saved) = (qkv.node, SavedActivation(inputs, precision: arithmetic.inputPrecision))
    Tape.current.record(out, inputs: recorded, family: .attention) { g in
        let gqkv = Tensor(uninitializedShape: node.shape)
        let gbias = bias?.requiresGrad == true ? Tensor(uninitializedShape: [heads, n, n]) : nil
        let gradOut = arithmetic.inputs(g)
        saved.withValues { inputs in
            withExtendedLifetime(gradOut) {
                attentionBackward(
                    layout, q: inputs.data, k: inputs.data, v: inputs.data, probabilities: probabilities.data,
                    gradOut: gradOut.data, gq: gqkv.data, gk: gqkv.data, gv: gqkv.data, factor: factor,
                    hasTerms: !terms.isEmpty, gradBias: gbias?.data, arithmetic: arithmetic)
            }
        }
        accumulateGradient(node, gqkv)
        if let bias, let gbias { accumulateGradient(bias, gbias) }
    }
    return out
}
