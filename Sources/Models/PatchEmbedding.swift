import Layers
import Tensors

/// Non-overlapping patches projected by a strided convolution, returned as (B, N, C) tokens.
final class PatchEmbedding: Module {
    let proj: Conv2d
    let patchSize: Int
    var isTraining = true

    init(inputChannels: Int, width: Int, patchSize: Int, generator: inout RandomGenerator) {
        proj = Conv2d(
            inputChannels: inputChannels, outputChannels: width, kernelSize: patchSize, stride: patchSize,
            generator: &generator)
        self.patchSize = patchSize
    }

    var children: [(String, any Module)] { [("proj", proj)] }

    func callAsFunction(_ images: Tensor) -> (tokens: Tensor, gridHeight: Int, gridWidth: Int) {
        let maps = proj(images)
        let h = maps.shape[2], w = maps.shape[3]
        return (maps.flatten(from: 2).transposed(1, 2), h, w)
    }
}

/// Block indices to tap in a stack of `depth` blocks: up to four, evenly spaced, the last included.
func evenlySpacedBlocks(depth: Int, count: Int = 4) -> [Int] {
    let taps = min(count, depth)
    return (1...taps).map { $0 * depth / taps - 1 }
}

/// Runs `blocks` over tokens and keeps the output of each block listed in `tapBlocks` as a token tap.
func runBlocks(_ blocks: Sequential, on tokens: Tensor, tapBlocks: [Int], layout: TapLayout) -> (Tensor, [FeatureTap]) {
    var x = tokens
    var taps: [FeatureTap] = []
    for (i, block) in blocks.layers.enumerated() {
        x = block(x)
        if tapBlocks.contains(i) { taps.append(FeatureTap(tensor: x, layout: layout)) }
    }
    return (x, taps)
}
