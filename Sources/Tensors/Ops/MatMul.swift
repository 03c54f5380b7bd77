/// Matrix products on `gemm` (oneDNN's or OpenBLAS's sgemm, as `GEMMKernel` chooses), at the
/// `Autocast` precision of the forward pass, backward included.

/// (..., M, K) x (K, N) -> (..., M, N); or (B, M, K) x (B, K, N) -> (B, M, N).
public func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
    if a.rank == 3 && b.rank == 3 { return batchedMatmul(a, b) }
    ensure(
        a.rank >= 2 && b.rank == 2 && a.shape[a.rank - 1] == b.shape[0],
        "matmul: shapes \(a.shape) and \(b.shape) do not multiply")
    let k = b.shape[0], n = b.shape[1]
    let m = a.count / k
    let precision = Autocast.precision
    let out = Tensor(uninitializedShape: Array(a.shape.dropLast()) + [n])
    FLOPCounter.add(m * n * k)
    // Each operand is kept only for the other's gradient, at the product's precision; at
    // bfloat16 the kept words are also what the product multiplies.
    let recording = Tape.current.willRecord([a, b])
    let savedA = recording && b.requiresGrad ? SavedActivation(a, precision: precision) : nil
    let savedB = recording && a.requiresGrad ? SavedActivation(b, precision: precision) : nil
    let bWords = b.bfloat16Copy ?? savedB?.bfloat16Words
    gemm(
        transposeA: false, transposeB: false, m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: n, c: out.data,
        ldc: n, precision: precision, aWords: savedA?.bfloat16Words, bWords: bWords)
    guard recording else {
        Tape.current.countUnrecorded(.gemm)
        return out
    }
    let (aNode, bNode) = (a.node, b.node)
    Tape.current.record(out, inputs: [a, b], family: .gemm) { g in
        if let savedB {
            let ga = Tensor(uninitializedShape: aNode.shape)
            savedB.withValues { b in
                gemm(
                    transposeA: false, transposeB: true, m: m, n: k, k: n, a: g.data, lda: n, b: b.data, ldb: n,
                    c: ga.data, ldc: k, precision: precision, bWords: bWords)
            }
            accumulateGradient(aNode, ga)
        }
        if let savedA {
            let gb = Tensor(uninitializedShape: bNode.shape)
            savedA.withValues { a in
                gemm(
                    transposeA: true, transposeB: false, m: k, n: n, k: m, a: a.data, lda: k, b: g.data, ldb: n,
                    c: gb.data, ldc: n, precision: precision, aWords: savedA.bfloat16Words)
            }
            accumulateGradient(bNode, gb)
        }
    }
    return out
}

/// op(A_i) x op(B_i) for each i of the leading batch dimension.
public func batchedMatmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    ensure(
        a.rank == 3 && b.rank == 3 && a.shape[0] == b.shape[0],
        "batchedMatmul: shapes \(a.shape) and \(b.shape) need a common batch")
    let batch = a.shape[0]
    let m = transposeA ? a.shape[2] : a.shape[1]
    let k = transposeA ? a.shape[1] : a.shape[2]
    let kb = transposeB ? b.shape[2] : b.shape[1]
    let n = transposeB ? b.shape[1] : b.shape[2]
    ensure(
        k == kb,
        "batchedMatmul: inner sizes differ: \(a.shape)\(transposeA ? "^T" : "") x \(b.shape)\(transposeB ? "^T" : "")")
    let out = Tensor(uninitializedShape: [batch, m, n])
    FLOPCounter.add(batch * m * n * k)
    let precision = Autocast.precision
    let sa = a.shape[1] * a.shape[2], sb = b.shape[1] * b.shape[2]
    let lda = a.shape[2], ldb = b.shape[2]
    for i in 0..<batch {
        gemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
            a: a.data + i * sa, lda: lda, b: b.data + i * sb, ldb: ldb, c: out.data + i * m * n, ldc: n,
            precision: precision)
    }
    guard Tape.current.recording([a, b], family: .gemm) else { return out }
    let (aNode, bNode) = (a.node, b.node)
    let savedA = b.requiresGrad ? SavedActivation(a, precision: precision) : nil
    let savedB = a.requiresGrad ? SavedActivation(b, precision: precision) : nil
    Tape.current.record(out, inputs: [a, b], family: .gemm) { g in
        if let savedB {
            let b = savedB.tensor()
            let ga = Tensor(uninitializedShape: aNode.shape)
            defer { withExtendedLifetime(b) {} }
            for i in 0..<batch {
                let gi = g.data + i * m * n, bi = b.data + i * sb, out = ga.data + i * sa
                if transposeA {
                    // A^T is (m, k): dA^T = G op(B)^T, so dA (k, m) = op(B) G^T
                    gemm(
                        transposeA: transposeB, transposeB: true, m: k, n: m, k: n, a: bi, lda: ldb, b: gi, ldb: n,
                        c: out, ldc: lda, precision: precision)
                } else {
                    gemm(
                        transposeA: false, transposeB: !transposeB, m: m, n: k, k: n, a: gi, lda: n, b: bi, ldb: ldb,
                        c: out, ldc: lda, precision: precision)
                }
            }
            accumulateGradient(aNode, ga)
        }
        if let savedA {
            let a = savedA.tensor()
            let gb = Tensor(uninitializedShape: bNode.shape)
            defer { withExtendedLifetime(a) {} }
            for i in 0..<batch {
                let gi = g.data + i * m * n, ai = a.data + i * sa, out = gb.data + i * sb
                if transposeB {
                    // dB (n, k) = G^T op(A)
                    gemm(
                        transposeA: true, transposeB: transposeA, m: n, n: k, k: m, a: gi, lda: n, b: ai, ldb: lda,
                        c: out, ldc: ldb, precision: precision)
                } else {
                    gemm(
                        transposeA: !transposeA, transposeB: false, m: k, n: n, k: m, a: ai, lda: lda, b: gi, ldb: n,
                        c: out, ldc: ldb, precision: precision)
                }
            }
            accumulateGradient(bNode, gb)
        }
    }
    return out
}

/// y = x W^T + b over the last dimension of x; weight is (out, in) as in PyTorch.
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
    let inFeatures = weight.shape[1], outFeatures = weight.shape[0]
    ensure(
        weight.rank == 2 && x.rank >= 1 && x.shape[x.rank - 1] == inFeatures,
        "linear: input \(x.shape) does not match weight \(weight.shape)")
    if let bias { ensure(bias.shape == [outFeatures], "linear: bias \(bias.shape) for weight \(weight.shape)") }
    let rows = x.count / inFeatures
    let precision = Autocast.precision
    let out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outFeatures])
    FLOPCounter.add(rows * inFeatures * outFeatures)
    if let bias {
        for r in 0..<rows { (out.data + r * outFeatures).update(from: bias.data, count: outFeatures) }
    }
    // The input is kept only for the weight's gradient, at the product's precision; at bfloat16
    // the kept words are also what the product multiplies.
    let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
    let recording = Tape.current.willRecord(inputs)
    let savedX = recording && weight.requiresGrad ? SavedActivation(x, precision: precision) : nil
    gemm(
        transposeA: false, transposeB: true, m: rows, n: outFeatures, k: inFeatures,
        a: x.data, lda: inFeatures, b: weight.data, ldb: inFeatures, beta: bias == nil ? 0 : 1, c: out.data,
        ldc: outFeatures, precision: precision, aWords: savedX?.bfloat16Words ?? x.savedWords,
        bWords: weight.bfloat16Copy)
    guard recording else {
        Tape.current.countUnrecorded(.gemm)
        return out
    }
    let xNode = x.node
    Tape.current.record(out, inputs: inputs, family: .gemm) { g in
        if xNode.requiresGrad {
            let gx = Tensor(uninitializedShape: xNode.shape)
            gemm(
                transposeA: false, transposeB: false, m: rows, n: inFeatures, k: outFeatures,
                a: g.data, lda: outFeatures, b: weight.data, ldb: inFeatures, c: gx.data, ldc: inFeatures,
                precision: precision, bWords: weight.bfloat16Copy)
            accumulateGradient(xNode, gx)
        }
        if let savedX {
            let gw = Tensor(uninitializedShape: weight.shape)
            savedX.withValues { x in
                gemm(
                    transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: rows,
                    a: g.data, lda: outFeatures, b: x.data, ldb: inFeatures, c: gw.data, ldc: inFeatures,
                    precision: precision, bWords: savedX.bfloat16Words)
            }
            accumulateGradient(weight, gw)
        }
        if let bias, bias.requiresGrad {
            let gb = Tensor(zeros: [outFeatures])
            for r in 0..<rows { addInPlace(gb.data, g.data + r * outFeatures, count: outFeatures) }
            accumulateGradient(bias, gb)
        }
    }
    return out
}

/// y[b] = W x[b] + bias[:, None] for x (B, N, C) and weight (M, N): a linear layer over the
/// token axis, as ResMLP's cross-patch layer applies `Linear(N, M)` to the transposed tokens
/// (`linear(x.transposed(1, 2)).transposed(1, 2)`), without the two transposed copies. At
/// bfloat16 the products round their inputs as `linear`'s do.
public func linearAcrossTokens(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
    ensure(
        x.rank == 3 && weight.rank == 2 && weight.shape[1] == x.shape[1],
        "linearAcrossTokens: input \(x.shape) is not (B, \(weight.shape.last ?? 0), C) for weight \(weight.shape)")
    let batch = x.shape[0], tokensIn = x.shape[1], width = x.shape[2], tokensOut = weight.shape[0]
    if let bias {
        ensure(bias.shape == [tokensOut], "linearAcrossTokens: bias \(bias.shape) for weight \(weight.shape)")
    }
    let precision = Autocast.precision
    let out = Tensor(uninitializedShape: [batch, tokensOut, width])
    let slice = tokensIn * width, outSlice = tokensOut * width
    FLOPCounter.add(batch * tokensOut * tokensIn * width)
    if let bias {
        parallelFor(batch * tokensOut, grain: 256) { rows in
            for row in rows { (out.data + row * width).initialize(repeating: bias.data[row % tokensOut], count: width) }
        }
    }
    // One image's product per thread at a time (a product this size splits poorly).
    parallelFor(batch) { images in
        for b in images {
            gemm(
                transposeA: false, transposeB: false, m: tokensOut, n: width, k: tokensIn, a: weight.data,
                lda: tokensIn, b: x.data + b * slice, ldb: width, beta: bias == nil ? 0 : 1,
                c: out.data + b * outSlice, ldc: width, precision: precision, aWords: weight.bfloat16Copy)
        }
    }
    let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
    guard Tape.current.recording(inputs, family: .gemm) else { return out }
    let xNode = x.node
    let savedX = weight.requiresGrad ? SavedActivation(x, precision: precision) : nil
    Tape.current.record(out, inputs: inputs, family: .gemm) { g in
        if xNode.requiresGrad {
            // dx[b] = W^T g[b]
            let gx = Tensor(uninitializedShape: xNode.shape)
            parallelFor(batch) { images in
                for b in images {
                    gemm(
                        transposeA: true, transposeB: false, m: tokensIn, n: width, k: tokensOut, a: weight.data,
                        lda: tokensIn, b: g.data + b * outSlice, ldb: width, c: gx.data + b * slice, ldc: width,
                        precision: precision, aWords: weight.bfloat16Copy)
                }
            }
            accumulateGradient(xNode, gx)
        }
        if let savedX {
            // dW = sum over b of g[b] x[b]^T: each thread sums its images' products, then the
            // partial sums add in chunk order (the same sums on any run).
            let (chunks, _) = parallelChunking(batch)
            let partials = Tensor(uninitializedShape: [chunks, tokensOut, tokensIn])
            savedX.withValues { x in
                parallelChunks(batch) { chunk, images in
                    for b in images {
                        gemm(
                            transposeA: false, transposeB: true, m: tokensOut, n: tokensIn, k: width,
                            a: g.data + b * outSlice, lda: width, b: x.data + b * slice, ldb: width,
                            beta: b == images.lowerBound ? 0 : 1, c: partials.data + chunk * weight.count,
                            ldc: tokensIn, precision: precision)
                    }
                }
            }
            let gw = partials.sum(axes: [0])
            accumulateGradient(weight, gw)
        }
        if let bias, bias.requiresGrad {
            let gb = Tensor(uninitializedShape: [tokensOut])
            for i in 0..<tokensOut {
                var sum: Float = 0
                for b in 0..<batch { sum += Tensors.sum(g.data + b * outSlice + i * width, count: width) }
                gb.data[i] = sum
            }
            accumulateGradient(bias, gb)
        }
    }
    return out
}
