import Foundation
import Layers
import Models
import Tensors

/// OFA's exit branch from an intermediate student stage to logits, built as OFAKD builds its
/// "projector" (Hao et al. 2023). With d = max(final student width, final teacher width):
/// - feature maps: a SepConv block per halving down to the last stage's grid (3x3 depthwise
///   stride 2, 1x1, BN, ReLU, 3x3 depthwise, 1x1 doubling the channels, d on the last, BN,
///   ReLU), or a 1x1 convolution to d at the last grid; average pooling; Linear(d).
/// - tokens: the patch tokens merged 2x2 (LayerNorm, Linear to the student's final width, GELU)
///   until the grid is 7x7 at most (class tokens pass by), max(taps - 1 - stage, 1) transformer
///   blocks (4 heads, MLP ratio 4, no qkv bias), the class token (or the mean of the tokens
///   without one), Linear.
/// Convolutions start from kaiming_normal (fan_out), linear layers from trunc_normal(0.02),
/// as OFAKD's `init_weights`.
public final class OFABranch: Module {
    let merge: Sequential?
    let blocks: Sequential
    let head: Linear
    public var isTraining = true

    /// `stage` is the tap's index among the student's `tapCount` taps; `finalWidths` the
    /// channels of the student's and the teacher's last taps.
    public init(
        tapShape: [Int], layout: TapLayout, stage: Int, tapCount: Int, finalWidths: (student: Int, teacher: Int),
        classes: Int, generator: inout RandomGenerator
    ) {
        switch layout {
        case .spatial:
            var channels = tapShape[1]
            let width = max(finalWidths.student, finalWidths.teacher)
            let halvings = tapCount - 1 - stage
            if halvings == 0 {
                blocks = Sequential([
                    Conv2d(inputChannels: channels, outputChannels: width, kernelSize: 1, generator: &generator)
                ])
            } else {
                blocks = Sequential(
                    (0..<halvings).map { i in
                        defer { channels *= 2 }
                        return Self.sepConv(
                            channels, i == halvings - 1 ? width : 2 * channels, generator: &generator)
                    })
            }
            merge = nil
            head = Linear(inputDimensions: width, outputDimensions: classes, generator: &generator)
        case let .tokens(_, gridHeight, _):
            let tapWidth = tapShape[2], width = finalWidths.student
            // OFAKD merges to a 7x7 grid (its "finally there are 49 patches"); a tap narrower
            // than the last stage is merged once at least, to reach the blocks' width.
            var merges = max(Int(log2(Double(gridHeight) / 7)), 0)
            if tapWidth != width { merges = max(merges, 1) }
            merge = Sequential(
                (0..<merges).flatMap { i -> [any Layer] in
                    let merging = PatchMerging(
                        width: i == 0 ? tapWidth : width, outputWidth: width, generator: &generator)
                    return i == 0 || i != merges - 1 ? [merging, Activation.gelu] : [merging]
                })
            let heads = [4, 2, 1].first { width % $0 == 0 }!
            blocks = Sequential(
                (0..<max(tapCount - 1 - stage, 1)).map { _ in
                    TransformerBlock(
                        width: width, heads: heads, mlpWidth: 4 * width, epsilon: 1e-5, qkvBias: false,
                        generator: &generator)
                })
            head = Linear(inputDimensions: width, outputDimensions: classes, generator: &generator)
        }
        forEachModule { module in
            if let conv = module as? Conv2d {
                let fanOut = conv.weight.shape[0] * conv.weight.shape[2] * conv.weight.shape[3]
                Initializer.kaimingNormalFanOut(conv.weight, fanOut: fanOut, generator: &generator)
                conv.bias.map { $0.fill(0) }
            } else if let linear = module as? Linear {
                Initializer.truncatedNormal(linear.weight, std: 0.02, generator: &generator)
                linear.bias.map { $0.fill(0) }
            }
        }
    }

    /// OFAKD's SepConv: two depthwise-separable convolutions, the first with stride 2.
    static func sepConv(_ input: Int, _ output: Int, generator: inout RandomGenerator) -> Sequential {
        Sequential([
            Conv2d(
                inputChannels: input, outputChannels: input, kernelSize: 3, stride: 2, padding: 1, groups: input,
                bias: false, generator: &generator),
            Conv2d(inputChannels: input, outputChannels: input, kernelSize: 1, bias: false, generator: &generator),
            BatchNorm2d(channels: input), Activation.relu,
            Conv2d(
                inputChannels: input, outputChannels: input, kernelSize: 3, padding: 1, groups: input, bias: false,
                generator: &generator),
            Conv2d(inputChannels: input, outputChannels: output, kernelSize: 1, bias: false, generator: &generator),
            BatchNorm2d(channels: output), Activation.relu,
        ])
    }

    public var children: [(String, any Module)] {
        (merge.map { [("merge", $0 as any Module)] } ?? []) + [("blocks", blocks), ("head", head)]
    }

    public func callAsFunction(_ tap: FeatureTap) -> Tensor {
        guard let merge, case let .tokens(prefix, h, w) = tap.layout else {
            return head(adaptiveAvgPool2d(blocks(tap.tensor), outputSize: (1, 1)).flatten())
        }
        let x = tap.tensor, b = x.shape[0], n = x.shape[1], c = x.shape[2]
        var patches = prefix > 0 ? x.slice(axis: 1, prefix..<n) : x
        if !merge.layers.isEmpty {
            let merged = merge(patches.reshape([b, h, w, c]))
            patches = merged.reshape([b, merged.shape[1] * merged.shape[2], merged.shape[3]])
        }
        let tokens = blocks(prefix > 0 ? concat([x.slice(axis: 1, 0..<prefix), patches], axis: 1) : patches)
        let features = prefix > 0 ? tokens.slice(axis: 1, 0..<1).reshape([b, tokens.shape[2]]) : tokens.mean(axes: [1])
        return head(features)
    }
}
