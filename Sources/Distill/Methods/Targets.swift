import Tensors

/// What each sample of a batch should be classified as. `labels` are the classes (for a sample
/// Mixup or CutMix blended from two, the one with the larger share, as OFA's code takes the
/// argmax of its soft labels for the target-class terms of DKD and OFA); `soft`, for blended
/// batches, is the (B, classes) target distribution the cross-entropy uses instead, label
/// smoothing already in it.
public struct Targets {
    public let labels: [Int]
    public let soft: Tensor?

    public init(labels: [Int], soft: Tensor? = nil) {
        self.labels = labels
        self.soft = soft
    }

    /// Cross-entropy against the soft targets when there are some, else the smoothed labels.
    public func crossEntropy(_ logits: Tensor, labelSmoothing: Float) -> Tensor {
        if let soft { return Tensors.crossEntropy(logits, softTargets: soft) }
        return Tensors.crossEntropy(logits, labels: labels, labelSmoothing: labelSmoothing)
    }
}
