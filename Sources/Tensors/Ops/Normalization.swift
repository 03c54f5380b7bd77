import Foundation

/// Sums per channel across ranks for synchronised batch norm; receives a Double buffer (sums
/// per channel, the element count last) and must replace it by its elementwise sum over all
/// ranks. It is called the same number of times on every rank (twice per forward, once per backward).
public typealias StatisticsReducer = (UnsafeMutableBufferPointer<Double>) -> Void

/// Batch norm over (N, H, W) per channel of an NCHW tensor (also (N, C) tensors).
/// Training mode normalises with the batch statistics and updates the running ones (unbiased
/// variance, PyTorch's convention); eval mode uses the running statistics.
public func batchNorm(
    _ x: Tensor, weight: Tensor?, bias: Tensor?, runningMean: Tensor, runningVariance: Tensor,
    training: Bool, momentum: Float = 0.1, epsilon: Float = 1e-5, reducer: StatisticsReducer? = nil
) -> Tensor {
    ensure(x.rank == 4 || x.rank == 2, "batchNorm: input \(x.shape) must be (N, C, H, W) or (N, C)")
    let batch = x.shape[0], channels = x.shape[1]
    let plane = x.rank == 4 ? x.shape[2] * x.shape[3] : 1
    ensure(
        runningMean.shape == [channels] && runningVariance.shape == [channels],
        "batchNorm: running statistics \(runningMean.shape) for input \(x.shape)")
    if let weight { ensure(weight.shape == [channels], "batchNorm: weight \(weight.shape) for input \(x.shape)") }
    let mean = Tensor(uninitializedShape: [channels])
    let inverseStd = Tensor(uninitializedShape: [channels])
    let pm = mean.data, pis = inverseStd.data, px = x.data
    if training {
        // Two passes, so a channel whose mean is large against its spread keeps its variance:
        // the mean first, then the sums of deviations from it (shifted data: the variance is
        // E[d^2] - E[d]^2 with d = x - mean, both terms small). Sums per plane in Float, across
        // planes (and ranks, through `reducer`) in Double.
        let stats = UnsafeMutableBufferPointer<Double>.allocate(capacity: 2 * channels + 1)
        defer { stats.deallocate() }
        parallelFor(channels) { range in
            for c in range {
                var s = 0.0
                for n in 0..<batch { s += Double(sum(px + (n * channels + c) * plane, count: plane)) }
                stats[c] = s
            }
        }
        stats[channels] = Double(batch * plane)
        reducer?(UnsafeMutableBufferPointer(rebasing: stats[0...channels]))
        let total = stats[channels]
        ensure(
            total > 1 || reducer != nil || batch * plane > 1,
            "batchNorm: training needs more than one value per channel, got input \(x.shape)")
        for c in 0..<channels { pm[c] = Float(stats[c] / total) }
        parallelFor(channels) { range in
            for c in range {
                var d = 0.0, dd = 0.0
                for n in 0..<batch {
                    let (a, b) = deviationSums(px + (n * channels + c) * plane, from: pm[c], count: plane)
                    d += Double(a)
                    dd += Double(b)
                }
                stats[c] = d
                stats[channels + c] = dd
            }
        }
        stats[2 * channels] = Double(batch * plane)
        reducer?(stats)
        for c in 0..<channels {
            let shift = stats[c] / total
            let m = Double(pm[c]) + shift
            let variance = max(0, stats[channels + c] / total - shift * shift)
            pm[c] = Float(m)
            pis[c] = Float(1 / (variance + Double(epsilon)).squareRoot())
            let unbiased = total > 1 ? variance * total / (total - 1) : variance
            runningMean.data[c] = (1 - momentum) * runningMean.data[c] + momentum * Float(m)
            runningVariance.data[c] = (1 - momentum) * runningVariance.data[c] + momentum * Float(unbiased)
        }
    } else {
        for c in 0..<channels {
            pm[c] = runningMean.data[c]
            pis[c] = 1 / (runningVariance.data[c] + epsilon).squareRoot()
        }
    }
    let out = Tensor(uninitializedShape: x.shape)
    let po = out.data, pw = weight?.data, pb = bias?.data
    parallelFor(batch * channels, grain: max(1, 4096 / plane)) { range in
        for index in range {
            let c = index % channels
            let scale = pis[c] * (pw?[c] ?? 1)
            let shift = (pb?[c] ?? 0) - pm[c] * scale
            let src = px + index * plane, dst = po + index * plane
            for i in 0..<plane { dst[i] = src[i] * scale + shift }
        }
    }
    var inputs = [x]
    if let weight { inputs.append(weight) }
    if let bias { inputs.append(bias) }
    Tape.current.record(out, inputs: inputs, family: .normalization) { g in
        let pg = g.data, pm = mean.data, pis = inverseStd.data, px = x.data, pw = weight?.data
        // Per channel: sum(dy) and sum(dy * xhat).
        let sums = UnsafeMutableBufferPointer<Double>.allocate(capacity: 2 * channels + 1)
        defer { sums.deallocate() }
        parallelFor(channels) { range in
            for c in range {
                var sg = 0.0, sgx = 0.0
                let m = pm[c], s = pis[c]
                for n in 0..<batch {
                    let offset = (n * channels + c) * plane
                    // sum(g * xhat) = s * sum(g * (x - m)), centred before multiplying: the
                    // difference of sum(g * x) and m * sum(g) would cancel when |m| >> std.
                    sg += Double(sum(pg + offset, count: plane))
                    sgx += Double(s) * Double(centeredDot(pg + offset, px + offset, mean: m, count: plane))
                }
                sums[c] = sg
                sums[channels + c] = sgx
            }
        }
        if let weight, weight.requiresGrad {
            let gw = Tensor(uninitializedShape: [channels])
            for c in 0..<channels { gw.data[c] = Float(sums[channels + c]) }
            accumulateGradient(weight, gw)
        }
        if let bias, bias.requiresGrad {
            let gb = Tensor(uninitializedShape: [channels])
            for c in 0..<channels { gb.data[c] = Float(sums[c]) }
            accumulateGradient(bias, gb)
        }
        guard x.requiresGrad else { return }
        var total = Double(batch * plane)
        if training, let reducer {
            sums[2 * channels] = total
            reducer(sums)
            total = sums[2 * channels]
        }
        let gx = Tensor(uninitializedShape: x.shape)
        let pgx = gx.data
        parallelFor(batch * channels, grain: max(1, 4096 / plane)) { range in
            for index in range {
                let c = index % channels
                let w = pw?[c] ?? 1
                let s = pis[c], m = pm[c]
                let offset = index * plane
                if training {
                    let meanG = Float(sums[c] / total), meanGX = Float(sums[channels + c] / total)
                    for i in 0..<plane {
                        let xhat = (px[offset + i] - m) * s
                        pgx[offset + i] = w * s * (pg[offset + i] - meanG - xhat * meanGX)
                    }
                } else {
                    for i in 0..<plane { pgx[offset + i] = w * s * pg[offset + i] }
                }
            }
        }
        accumulateGradient(x, gx)
    }
    return out
}

/// sum_i (row[i] - mean)^2 in eight partial sums (a single running sum is latency-bound on the
/// short rows LayerNorm sees, 32-64 channels).
@inline(__always)
private func squaredDeviations(_ row: UnsafePointer<Float>, from mean: Float, count: Int) -> Float {
    var partial = SIMD8<Float>()
    let m = SIMD8<Float>(repeating: mean)
    mapLanes(count) { i, lanes in
        var d = loadLanes(row, i, lanes) - m
        if lanes < 8 { for k in lanes..<8 { d[k] = 0 } }
        partial += d * d
    }
    return partial.sum()
}

/// sum_i (row[i] - mean) and sum_i (row[i] - mean)^2, in partial sums.
@inline(__always)
private func deviationSums(_ row: UnsafePointer<Float>, from mean: Float, count: Int) -> (Float, Float) {
    var first = SIMD8<Float>(), second = SIMD8<Float>()
    let m = SIMD8<Float>(repeating: mean)
    mapLanes(count) { i, lanes in
        var d = loadLanes(row, i, lanes) - m
        if lanes < 8 { for k in lanes..<8 { d[k] = 0 } }
        first += d
        second += d * d
    }
    return (first.sum(), second.sum())
}

/// sum_i g[i] * (x[i] - mean), in partial sums.
@inline(__always)
private func centeredDot(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, mean: Float, count: Int) -> Float {
    var partial = SIMD8<Float>()
    let m = SIMD8<Float>(repeating: mean)
    mapLanes(count) { i, lanes in
        var d = loadLanes(x, i, lanes) - m
        if lanes < 8 { for k in lanes..<8 { d[k] = 0 } }
        partial += loadLanes(g, i, lanes) * d
    }
    return partial.sum()
}

/// LayerNorm backward's row sums: sum of dxhat = g * w, and of dxhat * xhat, in partial sums.
@inline(__always)
private func gradientSums(
    _ g: UnsafePointer<Float>, weight: UnsafePointer<Float>?, row: UnsafePointer<Float>, mean: Float, inverseStd: Float,
    count: Int
) -> (Float, Float) {
    var sumG = SIMD8<Float>(), sumGX = SIMD8<Float>()
    let m = SIMD8<Float>(repeating: mean)
    mapLanes(count) { i, lanes in
        let dxhat = weight.map { loadLanes(g, i, lanes) * loadLanes($0, i, lanes) } ?? loadLanes(g, i, lanes)
        sumG += dxhat
        sumGX += dxhat * (loadLanes(row, i, lanes) - m) * inverseStd
    }
    return (sumG.sum(), sumGX.sum())
}

/// Layer norm over the last dimension, with optional affine weight and bias.
public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, epsilon: Float = 1e-5) -> Tensor {
    let width = x.shape[x.rank - 1]
    if let weight { ensure(weight.shape == [width], "layerNorm: weight \(weight.shape) for input \(x.shape)") }
    if let bias { ensure(bias.shape == [width], "layerNorm: bias \(bias.shape) for input \(x.shape)") }
    let rows = x.count / width
    let out = Tensor(uninitializedShape: x.shape)
    let mean = Tensor(uninitializedShape: [rows]), inverseStd = Tensor(uninitializedShape: [rows])
    let px = x.data, po = out.data, pm = mean.data, pis = inverseStd.data, pw = weight?.data, pb = bias?.data
    parallelFor(rows, grain: max(1, 8192 / width)) { range in
        for r in range {
            let row = px + r * width
            let m = sum(row, count: width) / Float(width)
            let v = squaredDeviations(row, from: m, count: width)
            let s = 1 / (v / Float(width) + epsilon).squareRoot()
            pm[r] = m
            pis[r] = s
            let dst = po + r * width
            if let pw, let pb {
                for i in 0..<width { dst[i] = (row[i] - m) * s * pw[i] + pb[i] }
            } else if let pw {
                for i in 0..<width { dst[i] = (row[i] - m) * s * pw[i] }
            } else {
                for i in 0..<width { dst[i] = (row[i] - m) * s + (pb?[i] ?? 0) }
            }
        }
    }
    var inputs = [x]
    if let weight { inputs.append(weight) }
    if let bias { inputs.append(bias) }
    Tape.current.record(out, inputs: inputs, family: .normalization) { g in
        let pg = g.data, pm = mean.data, pis = inverseStd.data, px = x.data, pw = weight?.data
        if x.requiresGrad {
            let gx = Tensor(uninitializedShape: x.shape)
            let pgx = gx.data
            parallelFor(rows, grain: max(1, 8192 / width)) { range in
                for r in range {
                    let row = px + r * width, grow = pg + r * width, dst = pgx + r * width
                    let m = pm[r], s = pis[r]
                    let (sumG, sumGX) = gradientSums(grow, weight: pw, row: row, mean: m, inverseStd: s, count: width)
                    let meanG = sumG / Float(width), meanGX = sumGX / Float(width)
                    for i in 0..<width {
                        let dxhat = grow[i] * (pw?[i] ?? 1)
                        dst[i] = s * (dxhat - meanG - (row[i] - m) * s * meanGX)
                    }
                }
            }
            accumulateGradient(x, gx)
        }
        let needWeight = weight?.requiresGrad ?? false, needBias = bias?.requiresGrad ?? false
        guard needWeight || needBias else { return }
        // Per-chunk partial sums over rows, added in chunk order: parallel and reproducible.
        let (chunks, _) = parallelChunking(rows, grain: max(1, 8192 / width))
        let partials = Tensor(zeros: [chunks, 2, width])
        let pp = partials.data
        parallelChunks(rows, grain: max(1, 8192 / width)) { chunk, range in
            let sw = pp + chunk * 2 * width, sb = sw + width
            for r in range {
                let row = px + r * width, grow = pg + r * width
                let m = pm[r], s = pis[r]
                for i in 0..<width {
                    sw[i] += grow[i] * (row[i] - m) * s
                    sb[i] += grow[i]
                }
            }
        }
        for chunk in 1..<max(1, chunks) {
            addInPlace(pp, pp + chunk * 2 * width, count: 2 * width)
        }
        if let weight, needWeight {
            let gw = Tensor(uninitializedShape: [width])
            gw.data.update(from: pp, count: width)
            accumulateGradient(weight, gw)
        }
        if let bias, needBias {
            let gb = Tensor(uninitializedShape: [width])
            gb.data.update(from: pp + width, count: width)
            accumulateGradient(bias, gb)
        }
    }
    return out
}

/// LayerNorm over the channels of a (B, C, H, W) map at each position, without affine
/// parameters. Equal to permuting to (B, H, W, C), `layerNorm` and permuting back, but works on
/// NCHW directly: the sums over channels run across whole planes, so every loop is over
/// contiguous positions and nothing is permuted (the distillation losses normalise every
/// feature map this way, forward and backward).
public func channelLayerNorm(_ x: Tensor, epsilon: Float = 1e-5) -> Tensor {
    ensure(x.rank == 4, "channelLayerNorm: input \(x.shape) must be (B, C, H, W)")
    let batch = x.shape[0], channels = x.shape[1], plane = x.shape[2] * x.shape[3]
    let out = Tensor(uninitializedShape: x.shape)
    let inverseStd = Tensor(uninitializedShape: [batch, plane])
    let px = x.data, po = out.data, pis = inverseStd.data
    let scale = 1 / Float(channels)
    parallelFor(batch) { images in
        let mean = Tensor(uninitializedShape: [plane]), pm = mean.data
        for b in images {
            let xb = px + b * channels * plane, ob = po + b * channels * plane, inv = pis + b * plane
            pm.update(repeating: 0, count: plane)
            for c in 0..<channels { addInPlace(pm, xb + c * plane, count: plane) }
            for p in 0..<plane { pm[p] *= scale }
            inv.update(repeating: 0, count: plane)
            for c in 0..<channels {
                let xc = xb + c * plane
                for p in 0..<plane {
                    let d = xc[p] - pm[p]
                    inv[p] += d * d
                }
            }
            for p in 0..<plane { inv[p] = 1 / (inv[p] * scale + epsilon).squareRoot() }
            for c in 0..<channels {
                let xc = xb + c * plane, oc = ob + c * plane
                for p in 0..<plane { oc[p] = (xc[p] - pm[p]) * inv[p] }
            }
        }
    }
    Tape.current.record(out, inputs: [x], family: .normalization) { g in
        // dx = inv * (g - mean_c(g) - xhat * mean_c(g * xhat)), with xhat the output.
        let gx = Tensor(uninitializedShape: x.shape)
        let pg = g.data, pgx = gx.data, py = out.data, pis = inverseStd.data
        parallelFor(batch) { images in
            let sums = Tensor(uninitializedShape: [2, plane]), sumG = sums.data, sumGY = sums.data + plane
            for b in images {
                let offset = b * channels * plane, inv = pis + b * plane
                sums.data.update(repeating: 0, count: 2 * plane)
                for c in 0..<channels {
                    let gc = pg + offset + c * plane, yc = py + offset + c * plane
                    for p in 0..<plane {
                        sumG[p] += gc[p]
                        sumGY[p] += gc[p] * yc[p]
                    }
                }
                for c in 0..<channels {
                    let gc = pg + offset + c * plane, yc = py + offset + c * plane, dc = pgx + offset + c * plane
                    for p in 0..<plane { dc[p] = inv[p] * (gc[p] - sumG[p] * scale - yc[p] * sumGY[p] * scale) }
                }
            }
        }
        accumulateGradient(x, gx)
    }
    return out
}
