import Layers
import Tensors

/// One stage of a hierarchical model as timm names it: an optional `downsample` (none in the
/// first stage), then `blocks` (ConvNeXt's stages, Swin's layers).
final class Stage: Layer {
    let downsample: (any Layer)?
    let blocks: Sequential
    var isTraining = true

    init(downsample: (any Layer)?, blocks: [any Layer]) {
        self.downsample = downsample
        self.blocks = Sequential(blocks)
    }

    var children: [(String, any Module)] {
        (downsample.map { [("downsample", $0 as any Module)] } ?? []) + [("blocks", blocks)]
    }

    func callAsFunction(_ x: Tensor) -> Tensor { blocks(downsample.map { $0(x) } ?? x) }
}
