/// An input a backward pass reads, as the op saved it. A product at bfloat16 (`Autocast`) reads
/// its inputs only rounded to bfloat16, so it keeps them as bfloat16 words, half the memory of
/// float32, as PyTorch's autocast keeps its bfloat16 copies; expanded again they are exactly the
/// rounded values the backward would compute, so the gradients do not change.
public struct SavedActivation {
    private let values: Tensor?
    private let words: BFloat16.Words?
    public let shape: [Int]

    /// Saves `tensor` for a backward pass that runs at `precision`.
    public init(_ tensor: Tensor, precision: Precision) {
        shape = tensor.shape
        if precision == .bfloat16 && tensor.count > 0 {
            // Ops that save the same activation (a ReLU and the convolution after it) share one
            // copy. Not a trained weight: the optimizer changes it in place every step.
            let trained = tensor.isLeaf && tensor.requiresGrad
            let shared = (trained ? nil : tensor.savedWords) ?? BFloat16.Words(tensor.data, count: tensor.count)
            if !trained { tensor.savedWords = shared }
            values = nil
            words = shared
        } else {
            values = tensor
            words = nil
        }
    }

    /// The bfloat16 words, when saved so (the native products take them as they are).
    public var bfloat16Words: BFloat16.Words? { words }

    /// Runs `body` with the saved values as float32, alive until it returns (`body` may take
    /// raw pointers to them).
    public func withValues<R>(_ body: (Tensor) throws -> R) rethrows -> R {
        let values = tensor()
        return try withExtendedLifetime(values) { try body(values) }
    }

    /// The saved values as float32 (bfloat16 words widened exactly).
    public func tensor() -> Tensor {
        if let values { return values }
        let result = Tensor(uninitializedShape: shape)
        if let words { BFloat16.widen(words.pointer, into: result.data, count: result.count) }
        return result
    }
}

extension Tape {
    /// Whether `record` would record an op on `inputs` now (ops save state for backward only then).
    public func willRecord(_ inputs: [Tensor]) -> Bool {
        GradMode.isEnabled && inputs.contains { $0.requiresGrad }
    }

    /// Counts an op that skips `record` (nothing to record) in the profile, as `record` would:
    /// a frozen teacher's ops are timed under their own family, not the next recorded op's.
    public func countUnrecorded(_ family: OpFamily) {
        if OpProfile.isEnabled { OpProfile.forwardOp(family) }
    }

    /// `willRecord`, for an op that has run its kernels: when it will not record, it is counted
    /// in the profile now.
    public func recording(_ inputs: [Tensor], family: OpFamily) -> Bool {
        if willRecord(inputs) { return true }
        countUnrecorded(family)
        return false
    }
}
