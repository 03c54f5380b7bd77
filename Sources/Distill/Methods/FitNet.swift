import Layers
import Models
import Settings
import Tensors

/// FitNets (Romero et al. 2015) for heterogeneous pairs: per stage, the student map through an
/// aligner (1x1 conv + BN, resized to the teacher's grid), both maps normalised, MSE.
public final class FitNet: DistillationMethod {
    public static let name = "fitnet"
    public static let summary = "feature hints through aligners (Romero et al. 2015)"
    public static let needsTeacher = true
    static let lambdaFitNet = Setting<Float>(
        "lambda_fitnet", default: 1, range: .nonNegative, help: "Weight of FitNet's hint loss.")
    public static let settings = [
        SharedSettings.lambdaCE.spec, SharedSettings.stages.spec, SharedSettings.featureNormalization.spec,
        lambdaFitNet.spec,
    ]

    let labelSmoothing: Float, lambdaCE: Float, lambdaFitNet: Float
    let normalization: FeatureNormalization
    let pairs: [(student: Int, teacher: Int)]
    let aligners: [Aligner]

    public init(context: MethodContext) throws {
        labelSmoothing = context.labelSmoothing
        lambdaCE = context.settings[SharedSettings.lambdaCE]
        lambdaFitNet = context.settings[Self.lambdaFitNet]
        normalization = context.settings[SharedSettings.featureNormalization]
        pairs = try resolveStagePairs(
            context.settings[SharedSettings.stages], student: context.studentTaps, teacher: context.teacherTaps,
            method: Self.name)
        var generator = RandomGenerator.derived(seed: context.seed, 0xD157)
        aligners = pairs.map { s, t in
            let studentMap = spatialShape(context.studentTaps[s]), teacherMap = spatialShape(context.teacherTaps[t])
            return Aligner(
                studentChannels: studentMap[0], teacherChannels: teacherMap[0],
                teacherSize: (teacherMap[1], teacherMap[2]), generator: &generator)
        }
    }

    public var helpers: [(String, any Module)] { aligners.enumerated().map { ("aligners.\($0.offset)", $0.element) } }
    public var teacherTapIndices: [Int] { teacherTaps(of: pairs) }

    public func loss(student: ModelOutput, teacher: ModelOutput?, targets: Targets, step: Int) -> ObjectiveLoss {
        let teacher = teacher!
        let ce = targets.crossEntropy(student.logits, labelSmoothing: labelSmoothing)
        var total = ce * lambdaCE
        var terms = ["ce": ce.item]
        for (k, pair) in pairs.enumerated() {
            let aligned = normalization.apply(aligners[k](student.taps[pair.student].spatialMap()))
            let target = withNoGrad { normalization.apply(teacher.taps[pair.teacher].spatialMap()) }
            let hint = mseLoss(aligned, target)
            total = total + hint * lambdaFitNet
            terms["fitnet\(k)"] = hint.item
        }
        return ObjectiveLoss(total: total, terms: terms)
    }
}
