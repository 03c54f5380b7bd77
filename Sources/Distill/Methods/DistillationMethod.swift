import Layers
import Models
import Settings
import Tensors

/// Shape and layout of a model's tap for one image, as `ModelRegistry.describeTaps` reports it.
public typealias TapShape = (shape: [Int], layout: TapLayout)

/// What a method is built from: its settings, the taps of both models, and the run's size.
public struct MethodContext {
    public var settings: SettingValues
    public var studentTaps: [TapShape]
    /// Empty for a method without a teacher.
    public var teacherTaps: [TapShape]
    public var classes: Int
    public var seed: UInt64
    /// The run's cross-entropy label smoothing (a training setting every method's CE term uses).
    public var labelSmoothing: Float
    public var stepsPerEpoch: Int
    public var totalSteps: Int

    public init(
        settings: SettingValues, studentTaps: [TapShape], teacherTaps: [TapShape], classes: Int, seed: UInt64,
        labelSmoothing: Float, stepsPerEpoch: Int, totalSteps: Int
    ) {
        self.settings = settings
        self.studentTaps = studentTaps
        self.teacherTaps = teacherTaps
        self.classes = classes
        self.seed = seed
        self.labelSmoothing = labelSmoothing
        self.stepsPerEpoch = stepsPerEpoch
        self.totalSteps = totalSteps
    }
}

/// The loss of one step: the total to differentiate and its named terms, logged next to it.
public struct ObjectiveLoss {
    public var total: Tensor
    public var terms: [String: Float]

    public init(total: Tensor, terms: [String: Float]) {
        self.total = total
        self.terms = terms
    }
}

/// A distillation method (or plain training): one type per method, registered in
/// `MethodRegistry`. It declares whether it needs a teacher and which teacher taps it reads,
/// the settings it reads, and owns its trainable helpers (aligners, DS2S modules, OFA
/// branches), which the trainer optimises and checkpoints with the student but leaves out of
/// `model.safetensors`. The teacher's outputs are given to `loss`, never fetched by it.
public protocol DistillationMethod: AnyObject {
    /// The `--method` name.
    static var name: String { get }
    static var summary: String { get }
    static var needsTeacher: Bool { get }
    /// Every setting the method reads (shared ones from `SharedSettings` included).
    static var settings: [SettingSpec] { get }

    init(context: MethodContext) throws

    /// Trainable helper modules by checkpoint prefix (`aligners.0`, `ds2s.0`, ...), in the order
    /// their parameters are optimised (none: empty).
    var helpers: [(String, any Module)] { get }
    /// The teacher taps `loss` reads (a teacher rank sends only these). Declared by every
    /// method, no default: a method that read a tap it did not declare would pass every
    /// inline test and fail only with teacher ranks.
    var teacherTapIndices: [Int] { get }

    /// `teacher` holds the frozen teacher's logits and taps for the same images (nil without a teacher).
    func loss(student: ModelOutput, teacher: ModelOutput?, targets: Targets, step: Int) -> ObjectiveLoss
}

/// Settings several methods read.
public enum SharedSettings {
    public static let lambdaCE = Setting<Float>(
        "lambda_ce", default: 1, range: .nonNegative, help: "Weight of cross-entropy.")
    public static let lambdaKD = Setting<Float>(
        "lambda_kd", default: 1, range: .nonNegative, help: "Weight of the logit loss.")
    public static let temperature = Setting<Float>(
        "tau", default: 4, range: .between(0.01, 100), help: "KD/DKD temperature.")
    public static let stages = Setting<[Int]>(
        "kd_stages", default: [-2, -1],
        help: "Tap indices to distil, negatives from the end; student and teacher taps are paired in this order.")
    public static let featureNormalization = Setting<FeatureNormalization>(
        "feat_norm", default: .layernorm,
        help: "Normalisation of aligned student and teacher maps.")
    public static let ofaEpsilon = Setting<Float>(
        "ofa_eps", default: 1, range: .between(0.01, 10), help: "OFA target exponent.")
    public static let ofaTemperature = Setting<Float>(
        "ofa_tau", default: 1, range: .between(0.01, 100), help: "OFA temperature.")
}
