import Layers
import Models
import Settings
import Tensors

/// Decoupled KD (Zhao et al. 2022): lambda_ce CE + w(step) (alpha TCKD + beta NCKD), with a
/// linear warm-up w over min(20 epochs, a quarter of training).
public final class DKD: DistillationMethod {
    public static let name = "dkd"
    public static let summary = "decoupled knowledge distillation (Zhao et al. 2022)"
    public static let needsTeacher = true
    static let alpha = Setting<Float>("dkd_alpha", default: 1, range: .nonNegative, help: "DKD target-class weight.")
    static let beta = Setting<Float>("dkd_beta", default: 8, range: .nonNegative, help: "DKD non-target weight.")
    public static let settings = [SharedSettings.lambdaCE.spec, SharedSettings.temperature.spec, alpha.spec, beta.spec]

    let labelSmoothing: Float, lambdaCE: Float, temperature: Float, alpha: Float, beta: Float
    let warmupSteps: Int

    public var helpers: [(String, any Module)] { [] }
    /// Logits only: no teacher tap.
    public var teacherTapIndices: [Int] { [] }

    public init(context: MethodContext) {
        labelSmoothing = context.labelSmoothing
        lambdaCE = context.settings[SharedSettings.lambdaCE]
        temperature = context.settings[SharedSettings.temperature]
        alpha = context.settings[Self.alpha]
        beta = context.settings[Self.beta]
        warmupSteps = max(1, min(20 * context.stepsPerEpoch, context.totalSteps / 4))
    }

    public func loss(student: ModelOutput, teacher: ModelOutput?, targets: Targets, step: Int) -> ObjectiveLoss {
        let ce = targets.crossEntropy(student.logits, labelSmoothing: labelSmoothing)
        let warm = min(1, Float(step + 1) / Float(warmupSteps))
        let dkd = decoupledKnowledgeDistillationLoss(
            student: student.logits, teacher: teacher!.logits.detached(), labels: targets.labels,
            alpha: alpha, beta: beta, temperature: temperature)
        return ObjectiveLoss(total: ce * lambdaCE + dkd * warm, terms: ["ce": ce.item, "dkd": dkd.item])
    }
}
