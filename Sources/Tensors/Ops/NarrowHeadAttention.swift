/// Attention kernels for narrow heads (width <= 16, e.g. DS2S's 8-wide heads over hundreds of
/// wavelet tokens), where a GEMM's packing costs more than its k = width arithmetic. One head
/// at a time, one query row at a time (four in the 8-wide backward): scores come eight keys per
/// vector from transposed keys, and products with values, keys and queries run over the head
/// width held in one SIMD vector, so each row of probabilities is read once per product and
/// nothing n x n is kept besides the probabilities themselves.
enum NarrowHeads {
    static let limit = 16

    /// Whether attention over heads of `width` runs here: these kernels fuse the softmax into
    /// their score pass and take no added score terms. They multiply in float32; at bfloat16
    /// their inputs arrive rounded (`AttentionArithmetic.roundedInputs`).
    static func apply(width: Int, hasTerms: Bool) -> Bool { width <= limit && !hasTerms }

    /// Floats of per-thread workspace for heads of `width` over `tokens` tokens.
    static func workspaceCount(tokens n: Int, width d: Int) -> Int { d * n + 3 * n * lanes(d) + 4 * n }

    private static func lanes(_ width: Int) -> Int { width <= 8 ? 8 : 16 }

    /// Forward of one (batch, head): probabilities into `scores` (n x n), output rows into `out`.
    static func forward(
        _ layout: AttentionLayout, b: Int, h: Int, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
        v: UnsafePointer<Float>,
        out: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>, factor: Float,
        workspace: UnsafeMutablePointer<Float>
    ) {
        if layout.width <= 8 {
            forward(layout, b, h, q, k, v, out, scores, factor, workspace, as: SIMD8<Float>.self)
        } else {
            forward(layout, b, h, q, k, v, out, scores, factor, workspace, as: SIMD16<Float>.self)
        }
    }

    /// Backward of one (batch, head) from its probabilities and output gradient.
    static func backward(
        _ layout: AttentionLayout, b: Int, h: Int, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
        v: UnsafePointer<Float>,
        probabilities: UnsafePointer<Float>, gradOut: UnsafePointer<Float>,
        gq: UnsafeMutablePointer<Float>, gk: UnsafeMutablePointer<Float>, gv: UnsafeMutablePointer<Float>,
        factor: Float, workspace: UnsafeMutablePointer<Float>
    ) {
        if layout.width <= 8 {
            backward(
                layout, b, h, q, k, v, probabilities, gradOut, gq, gk, gv, factor, workspace, as: SIMD8<Float>.self)
        } else {
            backward(
                layout, b, h, q, k, v, probabilities, gradOut, gq, gk, gv, factor, workspace, as: SIMD16<Float>.self)
        }
    }

    private static func forward<Lanes: SIMD>(
        _ layout: AttentionLayout, _ b: Int, _ h: Int, _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>,
        _ v: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ scores: UnsafeMutablePointer<Float>,
        _ factor: Float, _ workspace: UnsafeMutablePointer<Float>, as: Lanes.Type
    ) where Lanes.Scalar == Float {
        let n = layout.tokens, d = layout.width, ld = layout.inputStride, w = Lanes.scalarCount
        let keysT = workspace, values = workspace + d * n
        let qh = q + layout.queryOffset(b, h), oh = out + layout.outputOffset(b, h)
        transpose(k + layout.keyOffset(b, h), rows: n, width: d, stride: ld, into: keysT)
        pad(v + layout.valueOffset(b, h), rows: n, width: d, stride: ld, lanes: w, into: values)
        for i in 0..<n {
            let row = scores + i * n
            rowTimesTransposed(qh + i * ld, scale: factor, transposed: keysT, width: d, columns: n, into: row)
            softmaxRow(row, row, n)
            let o = weightedSum(row, rows: values, count: n, as: Lanes.self)
            for c in 0..<d { oh[i * layout.outputStride + c] = o[c] }
        }
    }

    private static func backward<Lanes: SIMD>(
        _ layout: AttentionLayout, _ b: Int, _ h: Int, _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>,
        _ v: UnsafePointer<Float>, _ probabilities: UnsafePointer<Float>, _ gradOut: UnsafePointer<Float>,
        _ gq: UnsafeMutablePointer<Float>, _ gk: UnsafeMutablePointer<Float>, _ gv: UnsafeMutablePointer<Float>,
        _ factor: Float, _ workspace: UnsafeMutablePointer<Float>, as: Lanes.Type
    ) where Lanes.Scalar == Float {
        let n = layout.tokens, d = layout.width, ld = layout.inputStride, ldo = layout.outputStride,
            w = Lanes.scalarCount
        // dK and dV interleaved, one vector each per key: as two arrays a power of two apart,
        // their loads and stores alias in the CPU's 4 KB address check and stall each other.
        let valuesT = workspace, keys = workspace + d * n, gradients = keys + n * w, scoreGrads = gradients + 2 * n * w
        let qh = q + layout.queryOffset(b, h), gh = gradOut + layout.outputOffset(b, h),
            gqh = gq + layout.queryOffset(b, h)
        transpose(v + layout.valueOffset(b, h), rows: n, width: d, stride: ld, into: valuesT)
        pad(k + layout.keyOffset(b, h), rows: n, width: d, stride: ld, lanes: w, into: keys)
        gradients.update(repeating: 0, count: 2 * n * w)
        // dP = dO V^T for query row i, then dS = P * (dP - <P, dP>) * scale.
        func scoreGradient(_ i: Int, into row: UnsafeMutablePointer<Float>) {
            let p = probabilities + i * n
            rowTimesTransposed(gh + i * ldo, scale: 1, transposed: valuesT, width: d, columns: n, into: row)
            let inner = dotInParallel(p, row, count: n)
            for j in 0..<n { row[j] = p[j] * (row[j] - inner) * factor }
        }
        func store(_ dq: Lanes, row i: Int) { for c in 0..<d { gqh[i * ld + c] = dq[c] } }
        // dV += P^T dO, dK += dS^T Q and dQ = dS K in one pass over the keys, four query rows
        // at a time so each key's gradients are loaded and stored once per four rows. Wider
        // lanes take one row at a time (four would not fit the vector registers).
        var i = 0
        if w == 8 {
            while i + 4 <= n {
                for r in 0..<4 { scoreGradient(i + r, into: scoreGrads + r * n) }
                let dq = fourRows(
                    probabilities + i * n, scoreGrads, rows: n, gradOut: gh + i * ldo, outputStride: ldo,
                    queries: qh + i * ld, stride: ld,
                    width: d, keys: keys, gradients: gradients, as: Lanes.self)
                store(dq.0, row: i)
                store(dq.1, row: i + 1)
                store(dq.2, row: i + 2)
                store(dq.3, row: i + 3)
                i += 4
            }
        }
        while i < n {
            scoreGradient(i, into: scoreGrads)
            store(
                oneRow(
                    probabilities + i * n, scoreGrads, count: n,
                    gradOut: vector(gh + i * ldo, width: d, as: Lanes.self),
                    query: vector(qh + i * ld, width: d, as: Lanes.self), keys: keys, gradients: gradients), row: i)
            i += 1
        }
        unpad(gradients, rows: n, width: d, lanes: 2 * w, into: gk + layout.keyOffset(b, h), stride: ld)
        unpad(gradients + w, rows: n, width: d, lanes: 2 * w, into: gv + layout.valueOffset(b, h), stride: ld)
    }

    /// One query row's share of dK and dV (accumulated into `gradients`) and its dQ.
    @inline(__always)
    private static func oneRow<Lanes: SIMD>(
        _ p: UnsafePointer<Float>, _ s: UnsafePointer<Float>, count n: Int, gradOut g: Lanes, query qi: Lanes,
        keys: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>
    ) -> Lanes where Lanes.Scalar == Float {
        let w = Lanes.scalarCount
        var dq0 = Lanes(), dq1 = Lanes()
        func update(_ j: Int) -> Lanes {
            let pj = Lanes(repeating: p[j]), sj = Lanes(repeating: s[j])
            let dk = UnsafeMutableRawPointer(gradients + 2 * j * w),
                dv = UnsafeMutableRawPointer(gradients + 2 * j * w + w)
            dk.storeBytes(of: multiplyAdd(sj, qi, dk.loadUnaligned(as: Lanes.self)), as: Lanes.self)
            dv.storeBytes(of: multiplyAdd(pj, g, dv.loadUnaligned(as: Lanes.self)), as: Lanes.self)
            return sj * UnsafeRawPointer(keys + j * w).loadUnaligned(as: Lanes.self)
        }
        var j = 0
        while j + 2 <= n {
            dq0 += update(j)
            dq1 += update(j + 1)
            j += 2
        }
        if j < n { dq0 += update(j) }
        return dq0 + dq1
    }

    /// Four consecutive query rows (probabilities and score gradients `rows` floats apart) at once.
    @inline(__always)
    private static func fourRows<Lanes: SIMD>(
        _ p: UnsafePointer<Float>, _ s: UnsafePointer<Float>, rows n: Int, gradOut: UnsafePointer<Float>,
        outputStride ldo: Int,
        queries: UnsafePointer<Float>, stride ld: Int, width d: Int, keys: UnsafePointer<Float>,
        gradients: UnsafeMutablePointer<Float>, as: Lanes.Type
    ) -> (Lanes, Lanes, Lanes, Lanes) where Lanes.Scalar == Float {
        let w = Lanes.scalarCount
        let g0 = vector(gradOut, width: d, as: Lanes.self), g1 = vector(gradOut + ldo, width: d, as: Lanes.self)
        let g2 = vector(gradOut + 2 * ldo, width: d, as: Lanes.self),
            g3 = vector(gradOut + 3 * ldo, width: d, as: Lanes.self)
        let q0 = vector(queries, width: d, as: Lanes.self), q1 = vector(queries + ld, width: d, as: Lanes.self)
        let q2 = vector(queries + 2 * ld, width: d, as: Lanes.self),
            q3 = vector(queries + 3 * ld, width: d, as: Lanes.self)
        var dq0 = Lanes(), dq1 = Lanes(), dq2 = Lanes(), dq3 = Lanes()
        for j in 0..<n {
            let s0 = Lanes(repeating: s[j]), s1 = Lanes(repeating: s[n + j]), s2 = Lanes(repeating: s[2 * n + j]),
                s3 = Lanes(repeating: s[3 * n + j])
            let dk = UnsafeMutableRawPointer(gradients + 2 * j * w),
                dv = UnsafeMutableRawPointer(gradients + 2 * j * w + w)
            var kGrad = dk.loadUnaligned(as: Lanes.self)
            kGrad = multiplyAdd(s0, q0, kGrad)
            kGrad = multiplyAdd(s1, q1, kGrad)
            kGrad = multiplyAdd(s2, q2, kGrad)
            kGrad = multiplyAdd(s3, q3, kGrad)
            dk.storeBytes(of: kGrad, as: Lanes.self)
            var vGrad = dv.loadUnaligned(as: Lanes.self)
            vGrad = multiplyAdd(Lanes(repeating: p[j]), g0, vGrad)
            vGrad = multiplyAdd(Lanes(repeating: p[n + j]), g1, vGrad)
            vGrad = multiplyAdd(Lanes(repeating: p[2 * n + j]), g2, vGrad)
            vGrad = multiplyAdd(Lanes(repeating: p[3 * n + j]), g3, vGrad)
            dv.storeBytes(of: vGrad, as: Lanes.self)
            let key = UnsafeRawPointer(keys + j * w).loadUnaligned(as: Lanes.self)
            dq0 = multiplyAdd(s0, key, dq0)
            dq1 = multiplyAdd(s1, key, dq1)
            dq2 = multiplyAdd(s2, key, dq2)
            dq3 = multiplyAdd(s3, key, dq3)
        }
        return (dq0, dq1, dq2, dq3)
    }

    /// out[j] = scale * sum_c a[c] * bt[c, j] for j < columns: eight columns per vector, four
    /// vectors at a time so the accumulations run in parallel.
    private static func rowTimesTransposed(
        _ a: UnsafePointer<Float>, scale: Float, transposed bt: UnsafePointer<Float>, width: Int, columns n: Int,
        into out: UnsafeMutablePointer<Float>
    ) {
        var j = 0
        while j + 32 <= n {
            var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
            for c in 0..<width {
                let x = SIMD8<Float>(repeating: a[c]), line = UnsafeRawPointer(bt + c * n + j)
                s0 = multiplyAdd(x, line.loadUnaligned(as: SIMD8<Float>.self), s0)
                s1 = multiplyAdd(x, line.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self), s1)
                s2 = multiplyAdd(x, line.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self), s2)
                s3 = multiplyAdd(x, line.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self), s3)
            }
            let target = UnsafeMutableRawPointer(out + j)
            target.storeBytes(of: s0 * scale, as: SIMD8<Float>.self)
            target.storeBytes(of: s1 * scale, toByteOffset: 32, as: SIMD8<Float>.self)
            target.storeBytes(of: s2 * scale, toByteOffset: 64, as: SIMD8<Float>.self)
            target.storeBytes(of: s3 * scale, toByteOffset: 96, as: SIMD8<Float>.self)
            j += 32
        }
        while j < n {
            let count = min(8, n - j)
            var s = SIMD8<Float>()
            for c in 0..<width { s = multiplyAdd(SIMD8(repeating: a[c]), loadLanes(bt + c * n, j, count), s) }
            storeLanes(s * scale, out, j, count)
            j += count
        }
    }

    /// sum_j weights[j] * rows[j] over padded rows of one vector each, four accumulators.
    @inline(__always)
    private static func weightedSum<Lanes: SIMD>(
        _ weights: UnsafePointer<Float>, rows: UnsafePointer<Float>, count n: Int,
        as: Lanes.Type
    ) -> Lanes where Lanes.Scalar == Float {
        let w = Lanes.scalarCount
        func term(_ j: Int, _ sum: Lanes) -> Lanes {
            multiplyAdd(Lanes(repeating: weights[j]), UnsafeRawPointer(rows + j * w).loadUnaligned(as: Lanes.self), sum)
        }
        var s0 = Lanes(), s1 = Lanes(), s2 = Lanes(), s3 = Lanes()
        var j = 0
        while j + 4 <= n {
            s0 = term(j, s0)
            s1 = term(j + 1, s1)
            s2 = term(j + 2, s2)
            s3 = term(j + 3, s3)
            j += 4
        }
        while j < n {
            s0 = term(j, s0)
            j += 1
        }
        return (s0 + s1) + (s2 + s3)
    }

    /// <a, b> in four vector accumulators (one is latency-bound on rows of a few hundred).
    private static func dotInParallel(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> Float {
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
        let pa = UnsafeRawPointer(a), pb = UnsafeRawPointer(b)
        var j = 0
        while j + 32 <= n {
            let offset = 4 * j
            s0 = multiplyAdd(
                pa.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self),
                pb.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self), s0)
            s1 = multiplyAdd(
                pa.loadUnaligned(fromByteOffset: offset + 32, as: SIMD8<Float>.self),
                pb.loadUnaligned(fromByteOffset: offset + 32, as: SIMD8<Float>.self), s1)
            s2 = multiplyAdd(
                pa.loadUnaligned(fromByteOffset: offset + 64, as: SIMD8<Float>.self),
                pb.loadUnaligned(fromByteOffset: offset + 64, as: SIMD8<Float>.self), s2)
            s3 = multiplyAdd(
                pa.loadUnaligned(fromByteOffset: offset + 96, as: SIMD8<Float>.self),
                pb.loadUnaligned(fromByteOffset: offset + 96, as: SIMD8<Float>.self), s3)
            j += 32
        }
        return ((s0 + s1) + (s2 + s3)).sum() + dot(a + j, b + j, count: n - j)
    }

    @inline(__always)
    private static func vector<Lanes: SIMD>(_ source: UnsafePointer<Float>, width: Int, as: Lanes.Type) -> Lanes
    where Lanes.Scalar == Float {
        var result = Lanes()
        for c in 0..<width { result[c] = source[c] }
        return result
    }

    /// (rows x width, row stride `stride`) to (width x rows), packed.
    private static func transpose(
        _ source: UnsafePointer<Float>, rows: Int, width: Int, stride: Int, into target: UnsafeMutablePointer<Float>
    ) {
        for r in 0..<rows { for c in 0..<width { target[c * rows + r] = source[r * stride + c] } }
    }

    /// (rows x width, row stride `stride`) to rows of `lanes` floats, zero-padded.
    private static func pad(
        _ source: UnsafePointer<Float>, rows: Int, width: Int, stride: Int, lanes: Int,
        into target: UnsafeMutablePointer<Float>
    ) {
        for r in 0..<rows {
            for c in 0..<width { target[r * lanes + c] = source[r * stride + c] }
            for c in width..<lanes { target[r * lanes + c] = 0 }
        }
    }

    /// Rows of `lanes` floats back to (rows x width) with row stride `stride`.
    private static func unpad(
        _ source: UnsafePointer<Float>, rows: Int, width: Int, lanes: Int, into target: UnsafeMutablePointer<Float>,
        stride: Int
    ) {
        for r in 0..<rows { for c in 0..<width { target[r * stride + c] = source[r * lanes + c] } }
    }
}
