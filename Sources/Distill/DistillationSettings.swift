import Tensors

/// The distillation methods.
public enum DistillationMethod: String, CaseIterable, Sendable {
    case none, kd, dkd, fitnet, ofa, sfkd

    public var needsTeacher: Bool { self != .none }
    public var usesFeatures: Bool { self == .fitnet || self == .sfkd || self == .ofa }
}

/// Every constant of sfkd-method.md, each one a flag and a YAML key.
public struct DistillationSettings: Equatable, Sendable {
    public var method: DistillationMethod = .none
    /// Tap indices, negatives from the end; teacher and student taps are paired in this order.
    public var stages: [Int] = [-2, -1]
    public var labelSmoothing: Float = 0.1
    public var lambdaCE: Float = 1
    public var lambdaKD: Float = 1
    public var temperature: Float = 4
    public var dkdAlpha: Float = 1
    public var dkdBeta: Float = 8
    /// DKD warm-up in steps (the trainer turns min(20 epochs, a quarter of training) into steps).
    public var dkdWarmupSteps: Int = 1
    public var ofaEpsilon: Float = 1
    public var ofaTemperature: Float = 1
    public var featureNormalization: FeatureNormalization = .layernorm
    public var dwtLevels: Int = 2
    /// nil: min(C_t, 64) rounded down to a multiple of 8.
    public var ds2sWidth: Int?
    public var lambdaLow: Float = 1
    public var lambdaHigh: Float = 1
    public var lambdaWavelet: Float = 1
    public var lambdaFrequency: Float = 1
    public var gfflRho: Float = 0.25
    public var gfflAlpha: Float = 0
    /// SFKD's logit term.
    public var logitLoss: LogitLoss = .kd
    public var lambdaFitNet: Float = 1

    public enum LogitLoss: String, CaseIterable, Sendable { case kd, ofa, none }

    public init() {}
}
