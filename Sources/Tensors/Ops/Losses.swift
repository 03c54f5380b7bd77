import Foundation

/// Mean cross-entropy of (B, C) logits against integer labels, with label smoothing ε:
/// the target is (1 - ε) one-hot + ε / C, as in PyTorch's `label_smoothing`.
public func crossEntropy(_ logits: Tensor, labels: [Int], labelSmoothing: Float = 0) -> Tensor {
    ensure(
        logits.rank == 2 && logits.shape[0] == labels.count,
        "crossEntropy: logits \(logits.shape) for \(labels.count) labels")
    let batch = logits.shape[0], classes = logits.shape[1]
    for label in labels { ensure(label >= 0 && label < classes, "crossEntropy: label \(label) outside 0..<\(classes)") }
    let logProbabilities = Tensor(uninitializedShape: logits.shape)
    let px = logits.data, plp = logProbabilities.data
    var total = 0.0
    let off = labelSmoothing / Float(classes), on = 1 - labelSmoothing + off
    for b in 0..<batch {
        let row = plp + b * classes
        logSoftmaxRow(px + b * classes, row, classes)
        var loss: Float = -(on - off) * row[labels[b]]
        if off != 0 { loss -= off * sum(row, count: classes) }
        total += Double(loss)
    }
    let out = Tensor(scalar: Float(total / Double(batch)))
    Tape.current.record(out, inputs: [logits], family: .reductions) { g in
        let plp = logProbabilities.data
        let scale = g.data[0] / Float(batch)
        let gx = Tensor(uninitializedShape: logits.shape)
        for b in 0..<batch {
            let row = plp + b * classes, dst = gx.data + b * classes
            for c in 0..<classes { dst[c] = (Foundation.exp(row[c]) - off) * scale }
            dst[labels[b]] -= (on - off) * scale
        }
        accumulateGradient(logits, gx)
    }
    return out
}

/// Mean cross-entropy of (B, C) logits against soft target distributions (B, C):
/// -Σ_c q_c log softmax(z)_c averaged over the batch. Targets get no gradient.
public func crossEntropy(_ logits: Tensor, softTargets: Tensor) -> Tensor {
    ensure(
        logits.rank == 2 && softTargets.shape == logits.shape,
        "crossEntropy: logits \(logits.shape) and soft targets \(softTargets.shape) differ")
    let batch = logits.shape[0], classes = logits.shape[1]
    let logProbabilities = Tensor(uninitializedShape: logits.shape)
    let px = logits.data, plp = logProbabilities.data, pq = softTargets.data
    var total = 0.0
    for b in 0..<batch {
        logSoftmaxRow(px + b * classes, plp + b * classes, classes)
        total -= Double(dot(pq + b * classes, plp + b * classes, count: classes))
    }
    let out = Tensor(scalar: Float(total / Double(batch)))
    Tape.current.record(out, inputs: [logits], family: .reductions) { g in
        // Both tensors are named here so the closure keeps their buffers (the targets are
        // often a temporary of the caller's, which would otherwise go back to the pool).
        let plp = logProbabilities.data, pq = softTargets.data
        let scale = g.data[0] / Float(batch)
        let gx = Tensor(uninitializedShape: logits.shape)
        for b in 0..<batch {
            let row = plp + b * classes, q = pq + b * classes, dst = gx.data + b * classes
            // d/dz of -Σ q log p = p Σq - q (Σq need not be 1).
            let mass = sum(q, count: classes)
            for c in 0..<classes { dst[c] = (Foundation.exp(row[c]) * mass - q[c]) * scale }
        }
        accumulateGradient(logits, gx)
    }
    return out
}

/// KL(target || input) summed over the last dimension and averaged over the rows, with `input`
/// given as log-probabilities and `target` as probabilities (PyTorch's
/// `kl_div(input, target, reduction="batchmean")`). Differentiable in both.
public func klDivergence(logInput: Tensor, target: Tensor) -> Tensor {
    ensure(
        logInput.shape == target.shape, "klDivergence: log-input \(logInput.shape) and target \(target.shape) differ")
    let width = logInput.shape[logInput.rank - 1]
    let rows = logInput.count / width
    let pi = logInput.data, pt = target.data
    var total = 0.0
    for i in 0..<logInput.count where pt[i] > 0 {
        total += Double(pt[i] * (Foundation.log(pt[i]) - pi[i]))
    }
    let out = Tensor(scalar: Float(total / Double(rows)))
    Tape.current.record(out, inputs: [logInput, target], family: .reductions) { g in
        let scale = g.data[0] / Float(rows)
        if logInput.requiresGrad {
            let gi = Tensor(uninitializedShape: logInput.shape)
            scale_(pt, -scale, gi.data, logInput.count)
            accumulateGradient(logInput, gi)
        }
        if target.requiresGrad {
            let gt = Tensor(uninitializedShape: target.shape)
            for i in 0..<target.count {
                let t = max(pt[i], Float.leastNormalMagnitude)
                gt.data[i] = (Foundation.log(t) + 1 - pi[i]) * scale
            }
            accumulateGradient(target, gt)
        }
    }
    return out
}

@inline(__always)
private func scale_(_ a: UnsafePointer<Float>, _ factor: Float, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
    scale(a, by: factor, into: out, count: n)
}

/// Mean squared error over all elements.
public func mseLoss(_ a: Tensor, _ b: Tensor) -> Tensor {
    ensure(a.shape == b.shape, "mseLoss: shapes \(a.shape) and \(b.shape) differ")
    return square(a - b).mean()
}
