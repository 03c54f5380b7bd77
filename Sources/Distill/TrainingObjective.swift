import Data
import Layers
import Models
import Tensors

/// What the trainer minimises. Plain training is cross-entropy; distillation methods add
/// their own terms and trainable helper modules (aligners, projectors), which the trainer puts
/// in the optimizer and the checkpoints but not in `model.safetensors`.
public protocol TrainingObjective: AnyObject {
    /// Trainable modules besides the model, by name prefix.
    var auxiliaryModules: [(String, any Module)] { get }
    /// The loss for one batch; `parts` are logged next to it.
    func loss(student: ModelOutput, batch: Batch, step: Int) -> (total: Tensor, parts: [String: Float])
}

/// Cross-entropy with label smoothing.
public final class CrossEntropyObjective: TrainingObjective {
    public let labelSmoothing: Float

    public init(labelSmoothing: Float) { self.labelSmoothing = labelSmoothing }

    public var auxiliaryModules: [(String, any Module)] { [] }

    public func loss(student: ModelOutput, batch: Batch, step: Int) -> (total: Tensor, parts: [String: Float]) {
        let ce = crossEntropy(student.logits, labels: batch.labels, labelSmoothing: labelSmoothing)
        return (ce, ["ce": ce.item])
    }
}
