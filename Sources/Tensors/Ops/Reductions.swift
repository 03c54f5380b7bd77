extension Tensor {
    private func reducedShape(_ axes: [Int], op: String) -> (keep: [Int], drop: [Int]) {
        let normalized = Set(axes.map { normalizedAxis($0, op: op) })
        var keep = shape, drop: [Int] = []
        for (i, d) in shape.enumerated() {
            if normalized.contains(i) { keep[i] = 1 } else { drop.append(d) }
        }
        return (keep, drop)
    }

    /// Sum over `axes` (all axes when empty).
    public func sum(axes: [Int] = [], keepDims: Bool = false) -> Tensor {
        let chosen = axes.isEmpty ? Array(0..<rank) : axes
        let (keep, drop) = reducedShape(chosen, op: "sum")
        let reduced = sumToShape(self.detached(), keep)
        let out = keepDims ? reduced : Tensor(shape: drop, storage: reduced.storage, offset: reduced.offset)
        let source = node
        Tape.current.record(out, inputs: [self], family: .reductions) { g in
            let expanded = broadcastKernel(
                .copyFirst, Tensor(shape: keep, storage: g.storage, offset: g.offset), g, outputShape: source.shape)
            accumulateGradient(source, expanded)
        }
        return out
    }

    /// Mean over `axes` (all axes when empty).
    public func mean(axes: [Int] = [], keepDims: Bool = false) -> Tensor {
        let chosen = axes.isEmpty ? Array(0..<rank) : axes
        let n = Set(chosen.map { normalizedAxis($0, op: "mean") }).reduce(1) { $0 * shape[$1] }
        return sum(axes: chosen, keepDims: keepDims) * (1 / Float(n))
    }
}
