import Layers
import Models
import Tensors

/// Hinton et al. 2015: lambda_ce CE + lambda_kd tau^2 KL(teacher || student) at temperature tau.
public final class KD: DistillationMethod {
    public static let name = "kd"
    public static let summary = "logit distillation (Hinton et al. 2015)"
    public static let needsTeacher = true
    public static let settings = [
        SharedSettings.lambdaCE.spec, SharedSettings.lambdaKD.spec, SharedSettings.temperature.spec,
    ]

    let labelSmoothing: Float, lambdaCE: Float, lambdaKD: Float, temperature: Float

    public var helpers: [(String, any Module)] { [] }
    /// Logits only: no teacher tap.
    public var teacherTapIndices: [Int] { [] }

    public init(context: MethodContext) {
        labelSmoothing = context.labelSmoothing
        lambdaCE = context.settings[SharedSettings.lambdaCE]
        lambdaKD = context.settings[SharedSettings.lambdaKD]
        temperature = context.settings[SharedSettings.temperature]
    }

    public func loss(student: ModelOutput, teacher: ModelOutput?, targets: Targets, step: Int) -> ObjectiveLoss {
        let ce = targets.crossEntropy(student.logits, labelSmoothing: labelSmoothing)
        let kd = knowledgeDistillationLoss(
            student: student.logits, teacher: teacher!.logits.detached(), temperature: temperature)
        return ObjectiveLoss(total: ce * lambdaCE + kd * lambdaKD, terms: ["ce": ce.item, "kd": kd.item])
    }
}
