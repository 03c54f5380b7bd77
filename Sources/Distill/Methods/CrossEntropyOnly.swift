import Layers
import Models
import Settings
import Tensors

/// No distillation: cross-entropy with the run's label smoothing.
public final class CrossEntropyOnly: DistillationMethod {
    public static let name = "none"
    public static let summary = "cross-entropy only (no teacher)"
    public static let needsTeacher = false
    public static let settings: [SettingSpec] = []

    let labelSmoothing: Float

    public var helpers: [(String, any Module)] { [] }
    public var teacherTapIndices: [Int] { [] }

    public init(context: MethodContext) { labelSmoothing = context.labelSmoothing }

    public func loss(student: ModelOutput, teacher: ModelOutput?, targets: Targets, step: Int) -> ObjectiveLoss {
        let ce = targets.crossEntropy(student.logits, labelSmoothing: labelSmoothing)
        return ObjectiveLoss(total: ce, terms: ["ce": ce.item])
    }
}
