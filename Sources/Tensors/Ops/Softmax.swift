import Foundation

/// The largest of n floats, eight lanes at a time (a scalar max loop does not vectorise).
@inline(__always)
func rowMaximum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var lanes = SIMD8<Float>(repeating: -.infinity)
    var i = 0
    while i + 8 <= n {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
        lanes = lanes.replacing(with: v, where: v .> lanes)
        i += 8
    }
    // Pairwise halves: SIMD's max() reduction is a generic call the optimiser does not inline.
    let half = lanes.lowHalf.replacing(with: lanes.highHalf, where: lanes.highHalf .> lanes.lowHalf)
    let quarter = half.lowHalf.replacing(with: half.highHalf, where: half.highHalf .> half.lowHalf)
    var maximum = max(quarter[0], quarter[1])
    while i < n {
        maximum = max(maximum, x[i])
        i += 1
    }
    return maximum
}

/// Numerically stable softmax of one row.
@inline(__always)
func softmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let maximum = rowMaximum(x, n)
    var totals = SIMD8<Float>(repeating: 0)
    mapLanes(n) { i, lanes in
        var e = fastExp(loadLanes(x, i, lanes) - maximum)
        if lanes < 8 { for k in lanes..<8 { e[k] = 0 } }
        storeLanes(e, y, i, lanes)
        totals += e
    }
    let inverse = 1 / totals.sum()
    mapLanes(n) { i, lanes in storeLanes(loadLanes(y, i, lanes) * inverse, y, i, lanes) }
}

/// log-softmax of one row.
@inline(__always)
func logSoftmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let maximum = rowMaximum(x, n)
    var totals = SIMD8<Float>(repeating: 0)
    mapLanes(n) { i, lanes in
        var e = fastExp(loadLanes(x, i, lanes) - maximum)
        if lanes < 8 { for k in lanes..<8 { e[k] = 0 } }
        totals += e
    }
    let total = totals.sum()
    let logTotal = maximum + Foundation.log(total)
    for i in 0..<n { y[i] = x[i] - logTotal }
}

/// Softmax over the last dimension.
public func softmax(_ x: Tensor) -> Tensor {
    let n = x.shape[x.rank - 1], rows = x.count / n
    let out = Tensor(uninitializedShape: x.shape)
    let px = x.data, py = out.data
    parallelFor(rows, grain: max(1, 4096 / n)) { range in
        for r in range { softmaxRow(px + r * n, py + r * n, n) }
    }
    let node = x.node
    Tape.current.record(out, inputs: [x], family: .reductions) { g in
        let gx = Tensor(uninitializedShape: node.shape)
        let pg = g.data, pgx = gx.data, py = out.data
        parallelFor(rows, grain: max(1, 4096 / n)) { range in
            for r in range {
                let y = py + r * n, gy = pg + r * n, dst = pgx + r * n
                let inner = dot(gy, y, count: n)
                for i in 0..<n { dst[i] = y[i] * (gy[i] - inner) }
            }
        }
        accumulateGradient(node, gx)
    }
    return out
}

/// log-softmax over the last dimension.
public func logSoftmax(_ x: Tensor) -> Tensor {
    let n = x.shape[x.rank - 1], rows = x.count / n
    let out = Tensor(uninitializedShape: x.shape)
    let px = x.data, py = out.data
    parallelFor(rows, grain: max(1, 4096 / n)) { range in
        for r in range { logSoftmaxRow(px + r * n, py + r * n, n) }
    }
    let node = x.node
    Tape.current.record(out, inputs: [x], family: .reductions) { g in
        let gx = Tensor(uninitializedShape: node.shape)
        let pg = g.data, pgx = gx.data, py = out.data
        parallelFor(rows, grain: max(1, 4096 / n)) { range in
            for r in range {
                let y = py + r * n, gy = pg + r * n, dst = pgx + r * n
                let total = sum(gy, count: n)
                for i in 0..<n { dst[i] = gy[i] - Foundation.exp(y[i]) * total }
            }
        }
        accumulateGradient(node, gx)
    }
    return out
}
