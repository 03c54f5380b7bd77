import Layers
import Models
import Settings
import Spectral
import Tensors

/// SFKD (README, "Method"): per distilled stage, the aligned student map and the teacher map
/// are split into multi-level Haar bands; DS2S refines the student's bands; the wavelet loss
/// compares bands (approximation weighted lambda_low, the mean of the detail bands lambda_high),
/// and the Gaussian-filtered frequency loss compares the inverse transform of the refined bands
/// with the teacher map. Cross-entropy (and, with --logit-loss, a logit term) completes the loss.
public final class SFKD: DistillationMethod {
    public static let name = "sfkd"
    public static let summary = "Haar wavelet bands refined by DS2S + Gaussian-filtered Fourier loss"
    public static let needsTeacher = true

    public enum LogitLoss: String, SettingChoice { case kd, ofa, none }
    /// What the frequency loss compares with the teacher map.
    public enum FrequencyInput: String, SettingChoice { case refined, student }

    /// No logit term by default: the abstract names none, and KD's term cost SFKD 4 points on
    /// validation (launch/recipes/RESULTS.md, "SFKD against FitNet").
    static let logitLoss = Setting<LogitLoss>(
        "logit_loss", default: .none, help: "SFKD's logit term (kd: Hinton's at tau; ofa: OFA's loss).")
    static let levels = Setting<Int>(
        "dwt_levels", default: 2, range: .between(1, 8), help: "Haar levels (reduced to fit the grid).")
    static let width = Setting<Int?>(
        "ds2s_dim", default: nil, range: .between(8, 4096),
        help: "DS2S width, a multiple of 8 (default min(C_t, 64) rounded down to a multiple of 8).")
    static let lambdaLow = Setting<Float>(
        "lambda_low", default: 1, range: .nonNegative, help: "Wavelet loss weight of the approximation band.")
    static let lambdaHigh = Setting<Float>(
        "lambda_high", default: 1, range: .nonNegative, help: "Wavelet loss weight of the detail bands.")
    static let lambdaWavelet = Setting<Float>(
        "lambda_wav", default: 1, range: .nonNegative, help: "Weight of the wavelet loss.")
    static let lambdaFrequency = Setting<Float>(
        "lambda_freq", default: 1, range: .nonNegative, help: "Weight of the Gaussian-filtered frequency loss.")
    static let rho = Setting<Float>(
        "gffl_rho", default: 0.25, range: .between(0.01, 10), help: "Gaussian width as a fraction of min(H, W).")
    static let focalAlpha = Setting<Float>(
        "gffl_alpha", default: 0, range: .between(0, 10), help: "Focal exponent of the frequency loss (0: off).")
    static let frequencyInput = Setting<FrequencyInput>(
        "gffl_on", default: .refined,
        help: "The frequency loss on the inverse transform of the refined bands, or on the aligned student map itself.")
    static let lambdaRaw = Setting<Float>(
        "lambda_raw", default: 0, range: .nonNegative,
        help:
            "Weight of the MSE between the aligned student map and the teacher map before DS2S (logged as raw<k> at 0)."
    )

    public static let settings = [
        SharedSettings.lambdaCE.spec, SharedSettings.lambdaKD.spec, SharedSettings.temperature.spec,
        SharedSettings.stages.spec,
        SharedSettings.featureNormalization.spec, SharedSettings.ofaEpsilon.spec, SharedSettings.ofaTemperature.spec,
        logitLoss.spec, levels.spec, width.spec, lambdaLow.spec, lambdaHigh.spec, lambdaWavelet.spec,
        lambdaFrequency.spec, rho.spec, focalAlpha.spec, frequencyInput.spec, lambdaRaw.spec,
    ]

    let labelSmoothing: Float, lambdaCE: Float, lambdaKD: Float, temperature: Float
    let ofaEpsilon: Float, ofaTemperature: Float
    let logit: LogitLoss
    let normalization: FeatureNormalization
    let lambdaLow: Float, lambdaHigh: Float, lambdaWavelet: Float, lambdaFrequency: Float, rho: Float, focalAlpha: Float
    let frequencyInput: FrequencyInput, lambdaRaw: Float
    let pairs: [(student: Int, teacher: Int)]
    let aligners: [Aligner]
    let refiners: [DS2S]
    /// Haar levels per stage (the requested count, reduced to what the teacher's grid allows).
    let levels: [Int]

    public init(context: MethodContext) throws {
        let s = context.settings
        labelSmoothing = context.labelSmoothing
        lambdaCE = s[SharedSettings.lambdaCE]
        lambdaKD = s[SharedSettings.lambdaKD]
        temperature = s[SharedSettings.temperature]
        ofaEpsilon = s[SharedSettings.ofaEpsilon]
        ofaTemperature = s[SharedSettings.ofaTemperature]
        normalization = s[SharedSettings.featureNormalization]
        logit = s[Self.logitLoss]
        lambdaLow = s[Self.lambdaLow]
        lambdaHigh = s[Self.lambdaHigh]
        lambdaWavelet = s[Self.lambdaWavelet]
        lambdaFrequency = s[Self.lambdaFrequency]
        rho = s[Self.rho]
        focalAlpha = s[Self.focalAlpha]
        frequencyInput = s[Self.frequencyInput]
        lambdaRaw = s[Self.lambdaRaw]
        pairs = try resolveStagePairs(
            s[SharedSettings.stages], student: context.studentTaps, teacher: context.teacherTaps, method: Self.name)
        var generator = RandomGenerator.derived(seed: context.seed, 0xD157)
        var aligners: [Aligner] = [], refiners: [DS2S] = [], levels: [Int] = []
        // Aligner then DS2S, stage by stage: the order the generator is drawn in.
        for (sIndex, t) in pairs {
            let studentMap = spatialShape(context.studentTaps[sIndex]),
                teacherMap = spatialShape(context.teacherTaps[t])
            aligners.append(
                Aligner(
                    studentChannels: studentMap[0], teacherChannels: teacherMap[0],
                    teacherSize: (teacherMap[1], teacherMap[2]), generator: &generator))
            let fitting = feasibleDWTLevels(height: teacherMap[1], width: teacherMap[2], requested: s[Self.levels])
            guard fitting >= 1 else {
                throw UserError(
                    "--dwt-levels: teacher tap \(t) is \(teacherMap[1])x\(teacherMap[2]); a Haar level needs a grid larger than 1x1 (choose other --kd-stages)"
                )
            }
            levels.append(fitting)
            let width = s[Self.width] ?? DS2S.defaultWidth(teacherChannels: teacherMap[0])
            guard width >= 8 && width % 8 == 0 else {
                throw UserError(
                    "--ds2s-dim \(width) must be a positive multiple of 8 (PE4D splits it in four sinusoidal chunks); the default for \(teacherMap[0]) teacher channels is \(DS2S.defaultWidth(teacherChannels: teacherMap[0]))"
                )
            }
            refiners.append(DS2S(teacherChannels: teacherMap[0], width: width, generator: &generator))
        }
        self.aligners = aligners
        self.refiners = refiners
        self.levels = levels
    }

    public var helpers: [(String, any Module)] {
        aligners.enumerated().map { ("aligners.\($0.offset)", $0.element as any Module) }
            + refiners.enumerated().map { ("ds2s.\($0.offset)", $0.element as any Module) }
    }

    public var teacherTapIndices: [Int] { teacherTaps(of: pairs) }

    public func loss(student: ModelOutput, teacher: ModelOutput?, targets: Targets, step: Int) -> ObjectiveLoss {
        let teacher = teacher!
        let zt = teacher.logits.detached()
        let ce = targets.crossEntropy(student.logits, labelSmoothing: labelSmoothing)
        var total = ce * lambdaCE
        var terms = ["ce": ce.item]
        switch logit {
        case .kd:
            let kd = knowledgeDistillationLoss(student: student.logits, teacher: zt, temperature: temperature)
            total = total + kd * lambdaKD
            terms["kd"] = kd.item
        case .ofa:
            let ofa = ofaLoss(
                student: student.logits, teacher: zt, labels: targets.labels, epsilon: ofaEpsilon,
                temperature: ofaTemperature)
            total = total + ofa * lambdaKD
            terms["ofa"] = ofa.item
        case .none:
            break
        }
        for (k, pair) in pairs.enumerated() {
            let aligned = normalization.apply(aligners[k](student.taps[pair.student].spatialMap()))
            let target = withNoGrad { normalization.apply(teacher.taps[pair.teacher].spatialMap()) }
            let (wavelet, frequency) = stageLoss(
                student: aligned, teacher: target, levels: levels[k], refiner: refiners[k])
            total = total + wavelet * lambdaWavelet + frequency * lambdaFrequency
            terms["wavelet\(k)"] = wavelet.item
            terms["frequency\(k)"] = frequency.item
            // How far the student's own aligned map is from the teacher's before DS2S refines
            // it (FitNet's distance): logged always, a loss term with lambda_raw > 0.
            let raw = lambdaRaw > 0 ? mseLoss(aligned, target) : withNoGrad { mseLoss(aligned, target) }
            if lambdaRaw > 0 { total = total + raw * lambdaRaw }
            terms["raw\(k)"] = raw.item
        }
        return ObjectiveLoss(total: total, terms: terms)
    }

    /// One stage: bands of both maps, DS2S on the student's, the wavelet loss per band, then the
    /// Gaussian-filtered frequency loss between the reconstruction and the teacher map.
    func stageLoss(student: Tensor, teacher: Tensor, levels: Int, refiner: DS2S) -> (wavelet: Tensor, frequency: Tensor)
    {
        let studentBands = haarDWT(student, levels: levels)
        let teacherBands = withNoGrad { haarDWT(teacher, levels: levels) }
        let refined = refiner(studentBands)
        var high: Tensor? = nil
        for j in 0..<levels {
            let (rl, rh, rd) = refined.details[j], (tl, th, td) = teacherBands.details[j]
            for term in [mseLoss(rl, tl), mseLoss(rh, th), mseLoss(rd, td)] { high = high.map { $0 + term } ?? term }
        }
        let detailMean = high! * (1 / Float(3 * levels))
        let wavelet = mseLoss(refined.approximation, teacherBands.approximation) * lambdaLow + detailMean * lambdaHigh
        let compared = frequencyInput == .refined ? haarIDWT(refined) : student
        let frequency = gaussianFrequencyLoss(compared, teacher, rho: rho, focalAlpha: focalAlpha)
        return (wavelet, frequency)
    }
}
