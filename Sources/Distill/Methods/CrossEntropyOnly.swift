import Models
import Tensors

/// No distillation: cross-entropy with the run's label smoothing.
public final class CrossEntropyOnly: DistillationMethod {
    public static let name = "none"
    public static let summary = "cross-entropy only (no teacher)"
    public static let needsTeacher = false
    public static let settings: [SettingSpec] = []

    let labelSmoothing: Float

    public init(context: MethodContext) { labelSmoothing = context.labelSmoothing }

    public func loss(student: ModelOutput, teacher: ModelOutput?, labels: [Int], step: Int) -> ObjectiveLoss {
        let ce = crossEntropy(student.logits, labels: labels, labelSmoothing: labelSmoothing)
        return ObjectiveLoss(total: ce, terms: ["ce": ce.item])
    }
}
