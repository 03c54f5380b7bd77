/// Broadcasting arithmetic (NumPy rules) with gradients reduced back to each operand's shape.

enum BinaryKind { case add, subtract, multiply, divide, copyFirst }

@inline(__always)
private func applyRow(
    _ kind: BinaryKind, _ a: UnsafePointer<Float>, _ sa: Int, _ b: UnsafePointer<Float>, _ sb: Int,
    _ out: UnsafeMutablePointer<Float>, _ n: Int
) {
    // One branch per (operation, stride pattern) so each inner loop is a plain vector loop.
    switch kind {
    case .add:
        if sa == 1 && sb == 1 {
            for i in 0..<n { out[i] = a[i] + b[i] }
        } else if sa == 1 {
            let v = b[0]
            for i in 0..<n { out[i] = a[i] + v }
        } else if sb == 1 {
            let v = a[0]
            for i in 0..<n { out[i] = v + b[i] }
        } else {
            out.update(repeating: a[0] + b[0], count: n)
        }
    case .subtract:
        if sa == 1 && sb == 1 {
            for i in 0..<n { out[i] = a[i] - b[i] }
        } else if sa == 1 {
            let v = b[0]
            for i in 0..<n { out[i] = a[i] - v }
        } else if sb == 1 {
            let v = a[0]
            for i in 0..<n { out[i] = v - b[i] }
        } else {
            out.update(repeating: a[0] - b[0], count: n)
        }
    case .multiply:
        if sa == 1 && sb == 1 {
            for i in 0..<n { out[i] = a[i] * b[i] }
        } else if sa == 1 {
            let v = b[0]
            for i in 0..<n { out[i] = a[i] * v }
        } else if sb == 1 {
            let v = a[0]
            for i in 0..<n { out[i] = v * b[i] }
        } else {
            out.update(repeating: a[0] * b[0], count: n)
        }
    case .divide:
        if sa == 1 && sb == 1 {
            for i in 0..<n { out[i] = a[i] / b[i] }
        } else if sa == 1 {
            let v = 1 / b[0]
            for i in 0..<n { out[i] = a[i] * v }
        } else if sb == 1 {
            let v = a[0]
            for i in 0..<n { out[i] = v / b[i] }
        } else {
            out.update(repeating: a[0] / b[0], count: n)
        }
    case .copyFirst:
        if sa == 1 { out.update(from: a, count: n) } else { out.update(repeating: a[0], count: n) }
    }
}

/// out = a (op) b with broadcasting, no autograd.
func broadcastKernel(_ kind: BinaryKind, _ a: Tensor, _ b: Tensor, outputShape: [Int]) -> Tensor {
    let out = Tensor(uninitializedShape: outputShape)
    if out.count == 0 { return out }
    let layout = BroadcastLayout(output: outputShape, operands: [a.shape, b.shape])
    let inner = layout.innerCount
    let sa = layout.strides[0].last!, sb = layout.strides[1].last!
    let pa = a.data, pb = b.data, po = out.data
    if layout.shape.count == 1 {
        parallelFor(inner, grain: 1 << 15) { range in
            applyRow(
                kind, pa + (sa == 1 ? range.lowerBound : 0), sa, pb + (sb == 1 ? range.lowerBound : 0), sb,
                po + range.lowerBound, range.count)
        }
        return out
    }
    parallelFor(layout.outerCount, grain: max(1, (1 << 15) / inner)) { rows in
        for row in rows {
            applyRow(
                kind, pa + layout.offsets(row: row, operand: 0), sa, pb + layout.offsets(row: row, operand: 1), sb,
                po + row * inner, inner)
        }
    }
    return out
}

/// Sums `gradient` over the dimensions along which `shape` was broadcast to produce it.
public func sumToShape(_ gradient: Tensor, _ shape: [Int]) -> Tensor {
    if gradient.shape == shape { return gradient }
    let out = Tensor(zeros: shape)
    let layout = BroadcastLayout(output: gradient.shape, operands: [gradient.shape, shape])
    let inner = layout.innerCount
    let st = layout.strides[1].last!
    let pg = gradient.data, po = out.data
    for row in 0..<layout.outerCount {
        let source = pg + row * inner
        let target = po + layout.offsets(row: row, operand: 1)
        if st == 1 { addInPlace(target, source, count: inner) } else { target[0] += sum(source, count: inner) }
    }
    return out
}

extension Tensor {
    /// Copies this tensor broadcast to `shape`.
    public func broadcast(to shape: [Int]) -> Tensor {
        let resultShape = BroadcastLayout.outputShape(self.shape, shape, op: "broadcast")
        ensure(resultShape == shape, "broadcast: shape \(self.shape) cannot broadcast to \(shape)")
        if self.shape == shape { return self }
        let out = broadcastKernel(.copyFirst, self, self, outputShape: shape)
        let source = node
        Tape.current.record(out, inputs: [self], family: .elementwise) { g in
            accumulateGradient(source, sumToShape(g, source.shape))
        }
        return out
    }
}

private func binary(_ kind: BinaryKind, _ a: Tensor, _ b: Tensor, op: String) -> Tensor {
    let shape = BroadcastLayout.outputShape(a.shape, b.shape, op: op)
    let out = broadcastKernel(kind, a, b, outputShape: shape)
    guard Tape.current.recording([a, b], family: .elementwise) else { return out }
    // Only the values a gradient reads are kept: sums keep none.
    let (aNode, bNode) = (a.node, b.node)
    let keptA = kind == .multiply && b.requiresGrad ? a : nil
    let keptB = (kind == .multiply && a.requiresGrad) || kind == .divide ? b : nil
    let keptOut = kind == .divide && b.requiresGrad ? out.detached() : nil
    Tape.current.record(out, inputs: [a, b], family: .elementwise) { g in
        switch kind {
        case .add:
            if aNode.requiresGrad { accumulateGradient(aNode, sumToShape(g, aNode.shape)) }
            if bNode.requiresGrad { accumulateGradient(bNode, sumToShape(g, bNode.shape)) }
        case .subtract:
            if aNode.requiresGrad { accumulateGradient(aNode, sumToShape(g, aNode.shape)) }
            if bNode.requiresGrad {
                let reduced = sumToShape(g, bNode.shape)
                let negated = Tensor(uninitializedShape: bNode.shape)
                scale(reduced.data, by: -1, into: negated.data, count: negated.count)
                accumulateGradient(bNode, negated)
            }
        case .multiply:
            if let keptB {
                accumulateGradient(
                    aNode, sumToShape(broadcastKernel(.multiply, g, keptB, outputShape: shape), aNode.shape))
            }
            if let keptA {
                accumulateGradient(
                    bNode, sumToShape(broadcastKernel(.multiply, g, keptA, outputShape: shape), bNode.shape))
            }
        case .divide:
            let gOverB = broadcastKernel(.divide, g, keptB!, outputShape: shape)
            if aNode.requiresGrad { accumulateGradient(aNode, sumToShape(gOverB, aNode.shape)) }
            if let keptOut {
                // d(a/b)/db = -(a/b)/b = -out/b
                let term = broadcastKernel(.multiply, gOverB, keptOut, outputShape: shape)
                let reduced = sumToShape(term, bNode.shape)
                let negated = Tensor(uninitializedShape: bNode.shape)
                scale(reduced.data, by: -1, into: negated.data, count: negated.count)
                accumulateGradient(bNode, negated)
            }
        case .copyFirst:
            fatalError("copyFirst is not a differentiable binary op")
        }
    }
    return out
}

public func + (a: Tensor, b: Tensor) -> Tensor { binary(.add, a, b, op: "add") }
public func - (a: Tensor, b: Tensor) -> Tensor { binary(.subtract, a, b, op: "subtract") }
public func * (a: Tensor, b: Tensor) -> Tensor { binary(.multiply, a, b, op: "multiply") }
public func / (a: Tensor, b: Tensor) -> Tensor { binary(.divide, a, b, op: "divide") }

// Scalar forms.

/// out = x * factor + shift, elementwise.
public func affine(_ x: Tensor, scale factor: Float, shift: Float) -> Tensor {
    let out = Tensor(uninitializedShape: x.shape)
    let px = x.data, po = out.data
    parallelFor(x.count, grain: 1 << 15) { r in
        for i in r { po[i] = px[i] * factor + shift }
    }
    let node = x.node
    Tape.current.record(out, inputs: [x], family: .elementwise) { g in
        let gx = Tensor(uninitializedShape: node.shape)
        scale(g.data, by: factor, into: gx.data, count: gx.count)
        accumulateGradient(node, gx)
    }
    return out
}

public func + (a: Tensor, s: Float) -> Tensor { affine(a, scale: 1, shift: s) }
public func + (s: Float, a: Tensor) -> Tensor { affine(a, scale: 1, shift: s) }
public func - (a: Tensor, s: Float) -> Tensor { affine(a, scale: 1, shift: -s) }
public func - (s: Float, a: Tensor) -> Tensor { affine(a, scale: -1, shift: s) }
public func * (a: Tensor, s: Float) -> Tensor { affine(a, scale: s, shift: 0) }
public func * (s: Float, a: Tensor) -> Tensor { affine(a, scale: s, shift: 0) }
public func / (a: Tensor, s: Float) -> Tensor { affine(a, scale: 1 / s, shift: 0) }
public prefix func - (a: Tensor) -> Tensor { affine(a, scale: -1, shift: 0) }
