import Data
import Foundation
import Layers
import Models
import Spectral
import Tensors

/// The teacher's part of a step: its logits and taps for a batch, computed without gradients.
public typealias TeacherOutputs = (_ batch: Batch) -> ModelOutput

/// The loss of a distillation method for a student and a frozen teacher, with the trainable
/// helpers the method needs (aligners, DS2S modules, OFA branches).
public final class DistillationObjective: TrainingObjective {
    public let settings: DistillationSettings
    let teacherOutputs: TeacherOutputs
    let stagePairs: [(student: Int, teacher: Int)]
    let aligners: [Aligner]
    let refiners: [DS2S]
    let branches: [OFABranch]
    let levels: [Int]
    /// The teacher taps the loss reads (a teacher rank sends only these).
    public let teacherTapIndices: [Int]

    /// Resolves and checks `settings.stages` against the taps (shape and layout per tap, for one
    /// image) and builds the helpers. Errors say what the models offer.
    public init(settings: DistillationSettings, studentTaps: [(shape: [Int], layout: TapLayout)], teacherTaps: [(shape: [Int], layout: TapLayout)],
                classes: Int, seed: UInt64, teacherOutputs: @escaping TeacherOutputs) throws {
        self.settings = settings
        self.teacherOutputs = teacherOutputs
        var generator = RandomGenerator.derived(seed: seed, 0xD157)
        func resolve(_ index: Int, _ taps: [(shape: [Int], layout: TapLayout)], _ who: String) throws -> Int {
            let resolved = index < 0 ? index + taps.count : index
            guard resolved >= 0 && resolved < taps.count else {
                let listing = taps.enumerated().map { "\($0.offset): \(describe($0.element))" }.joined(separator: "; ")
                throw UserError("--kd-stages \(index) is out of range for the \(who), which has \(taps.count) taps (\(listing)); use 0..<\(taps.count) or -\(taps.count)..<0")
            }
            return resolved
        }
        var pairs: [(Int, Int)] = []
        if settings.method.usesFeatures {
            guard !settings.stages.isEmpty else { throw UserError("--kd-stages is empty; \(settings.method.rawValue) needs at least one stage") }
            for index in settings.stages {
                pairs.append((try resolve(index, studentTaps, "student"), try resolve(index, teacherTaps, "teacher")))
            }
        }
        stagePairs = pairs
        teacherTapIndices = Array(Set(pairs.map(\.1))).sorted()
        var aligners: [Aligner] = [], refiners: [DS2S] = [], branches: [OFABranch] = [], levels: [Int] = []
        for (s, t) in pairs {
            let studentMap = spatialShape(studentTaps[s]), teacherMap = spatialShape(teacherTaps[t])
            switch settings.method {
            case .fitnet, .sfkd:
                aligners.append(Aligner(studentChannels: studentMap[0], teacherChannels: teacherMap[0], teacherSize: (teacherMap[1], teacherMap[2]), generator: &generator))
                if settings.method == .sfkd {
                    let fitting = feasibleDWTLevels(height: teacherMap[1], width: teacherMap[2], requested: settings.dwtLevels)
                    guard fitting >= 1 else {
                        throw UserError("--dwt-levels: teacher tap \(t) is \(teacherMap[1])x\(teacherMap[2]); a Haar level needs a grid larger than 1x1 (choose other --kd-stages)")
                    }
                    levels.append(fitting)
                    let width = settings.ds2sWidth ?? DS2S.defaultWidth(teacherChannels: teacherMap[0])
                    guard width >= 8 && width % 8 == 0 else {
                        throw UserError("--ds2s-dim \(width) must be a positive multiple of 8 (PE4D splits it in four sinusoidal chunks); the default for \(teacherMap[0]) teacher channels is \(DS2S.defaultWidth(teacherChannels: teacherMap[0]))")
                    }
                    refiners.append(DS2S(teacherChannels: teacherMap[0], width: width, generator: &generator))
                }
            case .ofa:
                let last = spatialShape(studentTaps[studentTaps.count - 1])
                branches.append(OFABranch(tapShape: [1] + (studentTaps[s].layout == .spatial ? studentMap : Array(studentTaps[s].shape.dropFirst())),
                                          layout: studentTaps[s].layout, finalGrid: (last[1], last[2]), classes: classes, generator: &generator))
            default:
                break
            }
        }
        self.aligners = aligners
        self.refiners = refiners
        self.branches = branches
        self.levels = levels
    }

    public var auxiliaryModules: [(String, any Module)] {
        aligners.enumerated().map { ("aligners.\($0.offset)", $0.element as any Module) }
            + refiners.enumerated().map { ("ds2s.\($0.offset)", $0.element as any Module) }
            + branches.enumerated().map { ("ofa.\($0.offset)", $0.element as any Module) }
    }

    public func loss(student: ModelOutput, batch: Batch, step: Int) -> (total: Tensor, parts: [String: Float]) {
        let s = settings
        let ce = crossEntropy(student.logits, labels: batch.labels, labelSmoothing: s.labelSmoothing)
        var total = ce * s.lambdaCE
        var parts: [String: Float] = ["ce": ce.item]
        guard s.method != .none else { return (total, parts) }
        let teacher = withNoGrad { teacherOutputs(batch) }
        let zt = teacher.logits.detached()
        switch s.method {
        case .kd:
            let kd = knowledgeDistillationLoss(student: student.logits, teacher: zt, temperature: s.temperature)
            total = total + kd * s.lambdaKD
            parts["kd"] = kd.item
        case .dkd:
            let warm = min(1, Float(step + 1) / Float(max(1, s.dkdWarmupSteps)))
            let dkd = decoupledKnowledgeDistillationLoss(student: student.logits, teacher: zt, labels: batch.labels,
                                                         alpha: s.dkdAlpha, beta: s.dkdBeta, temperature: s.temperature)
            total = total + dkd * warm
            parts["dkd"] = dkd.item
        case .ofa:
            var ofa = ofaLoss(student: student.logits, teacher: zt, labels: batch.labels, epsilon: s.ofaEpsilon, temperature: s.ofaTemperature)
            for (branch, pair) in zip(branches, stagePairs) {
                ofa = ofa + ofaLoss(student: branch(student.taps[pair.student]), teacher: zt, labels: batch.labels,
                                    epsilon: s.ofaEpsilon, temperature: s.ofaTemperature)
            }
            total = total + ofa * s.lambdaKD
            parts["ofa"] = ofa.item
        case .fitnet:
            for (k, pair) in stagePairs.enumerated() {
                let aligned = s.featureNormalization.apply(aligners[k](student.taps[pair.student].spatialMap()))
                let target = withNoGrad { s.featureNormalization.apply(teacher.taps[pair.teacher].spatialMap()) }
                let hint = mseLoss(aligned, target)
                total = total + hint * s.lambdaFitNet
                parts["fitnet\(k)"] = hint.item
            }
        case .sfkd:
            switch s.logitLoss {
            case .kd:
                let kd = knowledgeDistillationLoss(student: student.logits, teacher: zt, temperature: s.temperature)
                total = total + kd * s.lambdaKD
                parts["kd"] = kd.item
            case .ofa:
                let ofa = ofaLoss(student: student.logits, teacher: zt, labels: batch.labels, epsilon: s.ofaEpsilon, temperature: s.ofaTemperature)
                total = total + ofa * s.lambdaKD
                parts["ofa"] = ofa.item
            case .none:
                break
            }
            for (k, pair) in stagePairs.enumerated() {
                let aligned = s.featureNormalization.apply(aligners[k](student.taps[pair.student].spatialMap()))
                let target = withNoGrad { s.featureNormalization.apply(teacher.taps[pair.teacher].spatialMap()) }
                let (wavelet, frequency) = sfkdStageLoss(student: aligned, teacher: target, levels: levels[k], refiner: refiners[k])
                total = total + wavelet * s.lambdaWavelet + frequency * s.lambdaFrequency
                parts["wavelet\(k)"] = wavelet.item
                parts["frequency\(k)"] = frequency.item
            }
        case .none:
            break
        }
        return (total, parts)
    }

    /// One SFKD stage: bands of both maps, DS2S on the student's, the wavelet loss per band, then
    /// the Gaussian-filtered frequency loss between the reconstruction and the teacher map.
    func sfkdStageLoss(student: Tensor, teacher: Tensor, levels: Int, refiner: DS2S) -> (Tensor, Tensor) {
        let s = settings
        let studentBands = haarDWT(student, levels: levels)
        let teacherBands = withNoGrad { haarDWT(teacher, levels: levels) }
        let refined = refiner(studentBands)
        var high: Tensor? = nil
        for j in 0..<levels {
            let (rl, rh, rd) = refined.details[j], (tl, th, td) = teacherBands.details[j]
            for term in [mseLoss(rl, tl), mseLoss(rh, th), mseLoss(rd, td)] { high = high.map { $0 + term } ?? term }
        }
        let detailMean = high! * (1 / Float(3 * levels))
        let wavelet = mseLoss(refined.approximation, teacherBands.approximation) * s.lambdaLow + detailMean * s.lambdaHigh
        let reconstruction = haarIDWT(refined)
        let frequency = gaussianFrequencyLoss(reconstruction, teacher, rho: s.gfflRho, focalAlpha: s.gfflAlpha)
        return (wavelet, frequency)
    }
}

/// (C, H, W) of a tap for one image: feature maps as they are, tokens on their grid.
func spatialShape(_ tap: (shape: [Int], layout: TapLayout)) -> [Int] {
    switch tap.layout {
    case .spatial: return Array(tap.shape.dropFirst())
    case let .tokens(_, h, w): return [tap.shape[2], h, w]
    }
}

func describe(_ tap: (shape: [Int], layout: TapLayout)) -> String {
    let shape = spatialShape(tap)
    switch tap.layout {
    case .spatial: return "\(shape[0])x\(shape[1])x\(shape[2])"
    case .tokens: return "\(shape[0])x\(shape[1])x\(shape[2]) from tokens"
    }
}
