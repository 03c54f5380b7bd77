import Layers
import Models
import Tensors

/// One-for-All KD (Hao et al. 2023): the OFA loss on the student's logits and on exit branches
/// from each distilled student stage, all against the teacher's logits.
public final class OFA: DistillationMethod {
    public static let name = "ofa"
    public static let summary = "exit branches with the OFA loss (Hao et al. 2023)"
    public static let needsTeacher = true
    public static let settings = [
        SharedSettings.lambdaCE.spec, SharedSettings.lambdaKD.spec, SharedSettings.stages.spec,
        SharedSettings.ofaEpsilon.spec, SharedSettings.ofaTemperature.spec,
    ]

    let labelSmoothing: Float, lambdaCE: Float, lambdaKD: Float, epsilon: Float, temperature: Float
    let pairs: [(student: Int, teacher: Int)]
    let branches: [OFABranch]

    /// Logits only: no teacher tap.
    public var teacherTapIndices: [Int] { [] }

    public init(context: MethodContext) throws {
        labelSmoothing = context.labelSmoothing
        lambdaCE = context.settings[SharedSettings.lambdaCE]
        lambdaKD = context.settings[SharedSettings.lambdaKD]
        epsilon = context.settings[SharedSettings.ofaEpsilon]
        temperature = context.settings[SharedSettings.ofaTemperature]
        let taps = context.studentTaps
        pairs = try resolveStagePairs(
            context.settings[SharedSettings.stages], student: taps, teacher: context.teacherTaps, method: Self.name)
        var generator = RandomGenerator.derived(seed: context.seed, 0xD157)
        let finalWidths = (
            student: spatialShape(taps[taps.count - 1])[0],
            teacher: spatialShape(context.teacherTaps[context.teacherTaps.count - 1])[0]
        )
        branches = pairs.map { s, _ in
            let tap = taps[s]
            return OFABranch(
                tapShape: [1] + (tap.layout == .spatial ? spatialShape(tap) : Array(tap.shape.dropFirst())),
                layout: tap.layout, stage: s, tapCount: taps.count, finalWidths: finalWidths,
                classes: context.classes, generator: &generator)
        }
    }

    public var helpers: [(String, any Module)] { branches.enumerated().map { ("ofa.\($0.offset)", $0.element) } }

    public func loss(student: ModelOutput, teacher: ModelOutput?, targets: Targets, step: Int) -> ObjectiveLoss {
        let zt = teacher!.logits.detached()
        let ce = targets.crossEntropy(student.logits, labelSmoothing: labelSmoothing)
        var ofa = ofaLoss(
            student: student.logits, teacher: zt, labels: targets.labels, epsilon: epsilon, temperature: temperature)
        for (branch, pair) in zip(branches, pairs) {
            ofa =
                ofa
                + ofaLoss(
                    student: branch(student.taps[pair.student]), teacher: zt, labels: targets.labels, epsilon: epsilon,
                    temperature: temperature)
        }
        return ObjectiveLoss(total: ce * lambdaCE + ofa * lambdaKD, terms: ["ce": ce.item, "ofa": ofa.item])
    }
}
