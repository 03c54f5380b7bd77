import Layers
import Models
import Settings
import Tensors

/// Student-side adapter onto a teacher tap: Conv1x1 (C_s -> C_t, no bias) + BatchNorm, then a
/// bilinear resize (align_corners = false) to the teacher's grid when the grids differ.
public final class Aligner: Module {
    public let conv: Conv2d
    public let bn: BatchNorm2d
    public let targetSize: (Int, Int)
    public var isTraining = true

    public init(studentChannels: Int, teacherChannels: Int, teacherSize: (Int, Int), generator: inout RandomGenerator) {
        conv = Conv2d(
            inputChannels: studentChannels, outputChannels: teacherChannels, kernelSize: 1, bias: false,
            generator: &generator)
        bn = BatchNorm2d(channels: teacherChannels)
        targetSize = teacherSize
    }

    public var children: [(String, any Module)] { [("conv", conv), ("bn", bn)] }

    public func callAsFunction(_ studentMap: Tensor) -> Tensor {
        let projected = bn(conv(studentMap))
        if projected.shape[2] == targetSize.0 && projected.shape[3] == targetSize.1 { return projected }
        return bilinearResize(projected, size: targetSize)
    }
}

/// The feature normalisation applied to aligned student and teacher maps.
public enum FeatureNormalization: String, SettingChoice {
    case layernorm, none

    func apply(_ map: Tensor) -> Tensor { self == .layernorm ? channelLayerNorm(map) : map }
}
