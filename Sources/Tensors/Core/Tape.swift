/// Reverse-mode autograd on a tape: ops append a record with a hand-written backward as they
/// run; `backward` replays the records last to first. Creation order is a topological order,
/// so no graph sort is needed, and a leaf's gradient is final right after the backward of the
/// first record that used it, which is when its `gradientReadyHook` fires (this is what lets
/// gradient allreduces start while backward is still running).
public final class Tape: @unchecked Sendable {
    struct Record {
        /// The output's node only: the output's values are kept by the backward closures that
        /// need them, not by the tape.
        let output: GradientNode
        let backward: (Tensor) -> Void
        /// What the op is, for `OpProfile`.
        let family: OpFamily
        /// Leaves whose gradient is complete once this record's backward has run.
        var finalizes: [Tensor]
    }

    nonisolated(unsafe) public static var current = Tape()

    private var records: [Record] = []
    private var generation = 0

    public var recordCount: Int { records.count }

    /// Appends `output = f(inputs)` if grad mode is on and any input requires grad.
    /// Returns whether it recorded (callers skip saving state for backward otherwise).
    @discardableResult
    public func record(_ output: Tensor, inputs: [Tensor], family: OpFamily, backward: @escaping (Tensor) -> Void)
        -> Bool
    {
        if OpProfile.isEnabled { OpProfile.forwardOp(family) }
        guard GradMode.isEnabled, inputs.contains(where: { $0.requiresGrad }) else { return false }
        var finalizes: [Tensor] = []
        for input in inputs where input.requiresGrad && input.isLeaf && input.node.tapeGeneration != generation {
            input.node.tapeGeneration = generation
            finalizes.append(input)
        }
        output.requiresGrad = true
        output.node.isLeaf = false
        records.append(Record(output: output.node, backward: backward, family: family, finalizes: finalizes))
        return true
    }

    /// Back-propagates from `root` (seeded with ones, or `seed`) and clears the tape, which
    /// returns every saved activation to the pool.
    public func backward(from root: Tensor, seed: Tensor? = nil) {
        ensure(root.requiresGrad, "backward: the root tensor does not require grad (was it computed under noGrad?)")
        let seedGrad = seed ?? Tensor(repeating: 1, shape: root.shape)
        accumulateGradient(root, seedGrad)
        let taken = records
        records.removeAll(keepingCapacity: true)
        generation += 1
        for index in stride(from: taken.count - 1, through: 0, by: -1) {
            let record = taken[index]
            if let gradient = record.output.grad {
                if OpProfile.isEnabled {
                    OpProfile.backwardOp(record.family) { record.backward(gradient) }
                } else {
                    record.backward(gradient)
                }
                record.output.grad = nil
            }
            for leaf in record.finalizes {
                leaf.gradientReadyHook?(leaf)
            }
        }
        if root.isLeaf { root.gradientReadyHook?(root) }
    }

    /// Drops every record without back-propagating (e.g. after an evaluation forward pass).
    public func reset() {
        records.removeAll(keepingCapacity: true)
        generation += 1
    }
}

/// Adds `gradient` into `tensor.grad`.
public func accumulateGradient(_ tensor: Tensor, _ gradient: Tensor) {
    accumulateGradient(tensor.node, gradient)
}

/// Adds `gradient` into `node.grad`. The first contribution to a non-leaf is adopted without
/// a copy; a second one replaces the alias by an owned sum, so shared gradients are never
/// written in place.
public func accumulateGradient(_ node: GradientNode, _ gradient: Tensor) {
    guard node.requiresGrad else { return }
    let count = node.shape.reduce(1, *)
    ensure(
        gradient.count == count,
        "autograd: gradient of shape \(gradient.shape) for tensor of shape \(node.shape)")
    if let existing = node.grad {
        if node.ownsGrad {
            addInPlace(existing.data, gradient.data, count: existing.count)
        } else {
            let sum = Tensor(uninitializedShape: node.shape)
            add(existing.data, gradient.data, into: sum.data, count: sum.count)
            node.grad = sum
            node.ownsGrad = true
        }
    } else if node.isLeaf {
        let owned = Tensor(uninitializedShape: node.shape)
        owned.data.update(from: gradient.data, count: owned.count)
        node.grad = owned
        node.ownsGrad = true
    } else {
        node.grad =
            gradient.shape == node.shape
            ? gradient : Tensor(shape: node.shape, storage: gradient.storage, offset: gradient.offset)
        node.ownsGrad = false
    }
}

/// Global switch for recording; the frozen teacher and evaluation run with it off.
public enum GradMode {
    nonisolated(unsafe) public static var isEnabled = true
}

/// Runs `body` without recording ops.
public func withNoGrad<T>(_ body: () throws -> T) rethrows -> T {
    let previous = GradMode.isEnabled
    GradMode.isEnabled = false
    defer { GradMode.isEnabled = previous }
    return try body()
}

extension Tensor {
    /// Back-propagates from this tensor (a scalar loss, usually).
    public func backward(seed: Tensor? = nil) {
        Tape.current.backward(from: self, seed: seed)
    }
}
