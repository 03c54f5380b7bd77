/// Attention kernels for narrow heads (width <= 16, e.g. DS2S's 8-wide heads over hundreds of
/// wavelet tokens), where a GEMM's packing costs more than its k = width arithmetic. One head
/// at a time, one query row at a time: scores come eight keys per vector from transposed keys,
/// and products with values, keys and queries run over the head width held in one SIMD vector,
/// so each row of probabilities is read once per product and nothing n x n is kept besides
/// the probabilities themselves.
enum NarrowHeads {
    static let limit = 16

    /// Floats of per-thread workspace for heads of `width` over `tokens` tokens.
    static func workspaceCount(tokens n: Int, width d: Int) -> Int { d * n + 3 * n * lanes(d) + n }

    private static func lanes(_ width: Int) -> Int { width <= 8 ? 8 : 16 }

    /// Forward of one (batch, head): probabilities into `scores` (n x n), output rows into `out`.
    static func forward(_ layout: AttentionLayout, b: Int, h: Int, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                        out: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>, factor: Float, workspace: UnsafeMutablePointer<Float>) {
        if layout.width <= 8 {
            forward(layout, b, h, q, k, v, out, scores, factor, workspace, as: SIMD8<Float>.self)
        } else {
            forward(layout, b, h, q, k, v, out, scores, factor, workspace, as: SIMD16<Float>.self)
        }
    }

    /// Backward of one (batch, head) from its probabilities and output gradient.
    static func backward(_ layout: AttentionLayout, b: Int, h: Int, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                         probabilities: UnsafePointer<Float>, gradOut: UnsafePointer<Float>,
                         gq: UnsafeMutablePointer<Float>, gk: UnsafeMutablePointer<Float>, gv: UnsafeMutablePointer<Float>,
                         factor: Float, workspace: UnsafeMutablePointer<Float>) {
        if layout.width <= 8 {
            backward(layout, b, h, q, k, v, probabilities, gradOut, gq, gk, gv, factor, workspace, as: SIMD8<Float>.self)
        } else {
            backward(layout, b, h, q, k, v, probabilities, gradOut, gq, gk, gv, factor, workspace, as: SIMD16<Float>.self)
        }
    }

    private static func forward<Lanes: SIMD>(_ layout: AttentionLayout, _ b: Int, _ h: Int, _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>,
                                             _ v: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ scores: UnsafeMutablePointer<Float>,
                                             _ factor: Float, _ workspace: UnsafeMutablePointer<Float>, as: Lanes.Type) where Lanes.Scalar == Float {
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

    private static func backward<Lanes: SIMD>(_ layout: AttentionLayout, _ b: Int, _ h: Int, _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>,
                                              _ v: UnsafePointer<Float>, _ probabilities: UnsafePointer<Float>, _ gradOut: UnsafePointer<Float>,
                                              _ gq: UnsafeMutablePointer<Float>, _ gk: UnsafeMutablePointer<Float>, _ gv: UnsafeMutablePointer<Float>,
                                              _ factor: Float, _ workspace: UnsafeMutablePointer<Float>, as: Lanes.Type) where Lanes.Scalar == Float {
        let n = layout.tokens, d = layout.width, ld = layout.inputStride, ldo = layout.outputStride, w = Lanes.scalarCount
        let valuesT = workspace, keys = workspace + d * n, keyGrad = keys + n * w, valueGrad = keyGrad + n * w, scoreGrad = valueGrad + n * w
        let qh = q + layout.queryOffset(b, h), gh = gradOut + layout.outputOffset(b, h), gqh = gq + layout.queryOffset(b, h)
        transpose(v + layout.valueOffset(b, h), rows: n, width: d, stride: ld, into: valuesT)
        pad(k + layout.keyOffset(b, h), rows: n, width: d, stride: ld, lanes: w, into: keys)
        keyGrad.update(repeating: 0, count: 2 * n * w)
        for i in 0..<n {
            let p = probabilities + i * n
            // dP = dO V^T, then dS = P * (dP - <P, dP>) * scale.
            rowTimesTransposed(gh + i * ldo, scale: 1, transposed: valuesT, width: d, columns: n, into: scoreGrad)
            let inner = dotInParallel(p, scoreGrad, count: n)
            for j in 0..<n { scoreGrad[j] = p[j] * (scoreGrad[j] - inner) * factor }
            // dV += P^T dO, dK += dS^T Q and dQ = dS K, in one pass over the row.
            let g = vector(gh + i * ldo, width: d, as: Lanes.self), qi = vector(qh + i * ld, width: d, as: Lanes.self)
            var dq0 = Lanes(), dq1 = Lanes()
            func update(_ j: Int) -> Lanes {
                let pj = Lanes(repeating: p[j]), sj = Lanes(repeating: scoreGrad[j])
                let dv = UnsafeMutableRawPointer(valueGrad + j * w), dk = UnsafeMutableRawPointer(keyGrad + j * w)
                dv.storeBytes(of: multiplyAdd(pj, g, dv.loadUnaligned(as: Lanes.self)), as: Lanes.self)
                dk.storeBytes(of: multiplyAdd(sj, qi, dk.loadUnaligned(as: Lanes.self)), as: Lanes.self)
                return sj * UnsafeRawPointer(keys + j * w).loadUnaligned(as: Lanes.self)
            }
            var j = 0
            while j + 2 <= n {
                dq0 += update(j)
                dq1 += update(j + 1)
                j += 2
            }
            if j < n { dq0 += update(j) }
            let dqi = dq0 + dq1
            for c in 0..<d { gqh[i * ld + c] = dqi[c] }
        }
        unpad(keyGrad, rows: n, width: d, lanes: w, into: gk + layout.keyOffset(b, h), stride: ld)
        unpad(valueGrad, rows: n, width: d, lanes: w, into: gv + layout.valueOffset(b, h), stride: ld)
    }

    /// out[j] = scale * sum_c a[c] * bt[c, j] for j < columns: eight columns per vector, four
    /// vectors at a time so the accumulations run in parallel.
    private static func rowTimesTransposed(_ a: UnsafePointer<Float>, scale: Float, transposed bt: UnsafePointer<Float>, width: Int, columns n: Int,
                                           into out: UnsafeMutablePointer<Float>) {
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
    private static func weightedSum<Lanes: SIMD>(_ weights: UnsafePointer<Float>, rows: UnsafePointer<Float>, count n: Int,
                                                 as: Lanes.Type) -> Lanes where Lanes.Scalar == Float {
        let w = Lanes.scalarCount
        func term(_ j: Int, _ sum: Lanes) -> Lanes {
            multiplyAdd(Lanes(repeating: weights[j]), UnsafeRawPointer(rows + j * w).loadUnaligned(as: Lanes.self), sum)
        }
        var s0 = Lanes(), s1 = Lanes(), s2 = Lanes(), s3 = Lanes()
        var j = 0
        while j + 4 <= n {
            s0 = term(j, s0); s1 = term(j + 1, s1); s2 = term(j + 2, s2); s3 = term(j + 3, s3)
            j += 4
        }
        while j < n { s0 = term(j, s0); j += 1 }
        return (s0 + s1) + (s2 + s3)
    }

    /// <a, b> in four vector accumulators (one is latency-bound on rows of a few hundred).
    private static func dotInParallel(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> Float {
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
        let pa = UnsafeRawPointer(a), pb = UnsafeRawPointer(b)
        var j = 0
        while j + 32 <= n {
            let offset = 4 * j
            s0 = multiplyAdd(pa.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self), pb.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self), s0)
            s1 = multiplyAdd(pa.loadUnaligned(fromByteOffset: offset + 32, as: SIMD8<Float>.self), pb.loadUnaligned(fromByteOffset: offset + 32, as: SIMD8<Float>.self), s1)
            s2 = multiplyAdd(pa.loadUnaligned(fromByteOffset: offset + 64, as: SIMD8<Float>.self), pb.loadUnaligned(fromByteOffset: offset + 64, as: SIMD8<Float>.self), s2)
            s3 = multiplyAdd(pa.loadUnaligned(fromByteOffset: offset + 96, as: SIMD8<Float>.self), pb.loadUnaligned(fromByteOffset: offset + 96, as: SIMD8<Float>.self), s3)
            j += 32
        }
        return ((s0 + s1) + (s2 + s3)).sum() + dot(a + j, b + j, count: n - j)
    }

    @inline(__always)
    private static func vector<Lanes: SIMD>(_ source: UnsafePointer<Float>, width: Int, as: Lanes.Type) -> Lanes where Lanes.Scalar == Float {
        var result = Lanes()
        for c in 0..<width { result[c] = source[c] }
        return result
    }

    /// (rows x width, row stride `stride`) to (width x rows), packed.
    private static func transpose(_ source: UnsafePointer<Float>, rows: Int, width: Int, stride: Int, into target: UnsafeMutablePointer<Float>) {
        for r in 0..<rows { for c in 0..<width { target[c * rows + r] = source[r * stride + c] } }
    }

    /// (rows x width, row stride `stride`) to rows of `lanes` floats, zero-padded.
    private static func pad(_ source: UnsafePointer<Float>, rows: Int, width: Int, stride: Int, lanes: Int, into target: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            for c in 0..<width { target[r * lanes + c] = source[r * stride + c] }
            for c in width..<lanes { target[r * lanes + c] = 0 }
        }
    }

    /// Rows of `lanes` floats back to (rows x width) with row stride `stride`.
    private static func unpad(_ source: UnsafePointer<Float>, rows: Int, width: Int, lanes: Int, into target: UnsafeMutablePointer<Float>, stride: Int) {
        for r in 0..<rows { for c in 0..<width { target[r * stride + c] = source[r * lanes + c] } }
    }
}
