import Models
import Tensors

/// timm's `checkpoint_filter_fn`s: checkpoints in an older or the original repository's layout
/// renamed (and reshaped) to the names timm's models use today, so `sfkd import` takes what
/// `timm.create_model(..., pretrained=True)` would. Checkpoints already in today's layout pass
/// through unchanged.
extension CheckpointFilter {
    /// The tensors under today's names, and a line saying what was changed (nil when nothing was).
    public func apply(_ tensors: [(String, Tensor)], modelShapes: [String: [Int]]) -> (
        tensors: [(String, Tensor)], note: String?
    ) {
        let names = Set(tensors.map(\.0))
        var out: [(String, Tensor)] = []
        var renamed = 0, dropped = 0
        func keep(_ name: String, _ original: String, _ tensor: Tensor) {
            if name != original { renamed += 1 }
            out.append((name, tensor))
        }
        for (name, tensor) in tensors {
            switch self {
            case .none:
                out.append((name, tensor))
            case .swin:
                if name.contains("relative_position_index") || name.contains("attn_mask") {
                    dropped += 1
                    continue
                }
                guard !names.contains("head.fc.weight") else {
                    out.append((name, tensor))
                    continue
                }
                var parts = name.split(separator: ".").map(String.init)
                if parts.count > 2, parts[0] == "layers", let stage = Int(parts[1]), parts[2] == "downsample" {
                    parts[1] = String(stage + 1)
                }
                if parts.first == "head" { parts.insert("fc", at: 1) }
                keep(parts.joined(separator: "."), name, tensor)
            case .convnext:
                guard !names.contains("head.norm.weight") && !names.contains("norm_pre.weight") else {
                    out.append((name, tensor))
                    continue
                }
                if name.hasPrefix("projectors.") || name.hasPrefix("norms.") {
                    dropped += 1
                    continue
                }
                var parts = name.split(separator: ".").map(String.init)
                if parts.count > 2, parts[0] == "downsample_layers", parts[1] == "0" {
                    parts = ["stem"] + parts[2...]
                } else if parts.count > 2, parts[0] == "downsample_layers", Int(parts[1]) != nil, Int(parts[2]) != nil {
                    parts = ["stages", parts[1], "downsample"] + parts[2...]
                } else if parts.count > 2, parts[0] == "stages", Int(parts[1]) != nil, Int(parts[2]) != nil {
                    parts.insert("blocks", at: 2)
                }
                parts = parts.flatMap { part -> [String] in
                    switch part {
                    case "dwconv": return ["conv_dw"]
                    case "pwconv1": return ["mlp", "fc1"]
                    case "pwconv2": return ["mlp", "fc2"]
                    default: return [part]
                    }
                }
                if parts.first == "head" { parts.insert("fc", at: 1) }
                if parts.first == "norm" { parts.insert("head", at: 0) }
                let renamedTo = parts.joined(separator: ".")
                keep(renamedTo, name, reshaped(tensor, to: modelShapes[renamedTo]))
            case .visionTransformer:
                if name.contains("pre_logits") {
                    dropped += 1
                    continue
                }
                if name == "patch_embed.proj.weight", tensor.rank < 4, let shape = modelShapes[name], shape.count == 4,
                    tensor.count == shape.reduce(1, *)
                {
                    renamed += 1
                    out.append((name, tensor.reshape(shape)))
                } else {
                    out.append((name, tensor))
                }
            case .resmlp:
                guard names.contains("patch_embed.proj.weight") else {
                    out.append((name, tensor))
                    continue
                }
                let renamedTo = name.replacingOccurrences(of: "patch_embed.", with: "stem.")
                    .replacingOccurrences(of: "attn.", with: "linear_tokens.")
                    .replacingOccurrences(of: "mlp.", with: "mlp_channels.")
                    .replacingOccurrences(of: "gamma_", with: "ls")
                if renamedTo.hasSuffix(".alpha") || renamedTo.hasSuffix(".beta") {
                    keep(renamedTo, name, tensor.reshape([1, 1, tensor.count]))
                    continue
                }
                keep(renamedTo, name, tensor)
            }
        }
        guard renamed > 0 || dropped > 0 else { return (out, nil) }
        var changes: [String] = []
        if renamed > 0 { changes.append("\(renamed) tensor\(renamed == 1 ? "" : "s") renamed or reshaped") }
        if dropped > 0 { changes.append("\(dropped) unused dropped") }
        return (
            out,
            "converted from an older checkpoint layout as timm's checkpoint_filter_fn does: \(changes.joined(separator: ", "))"
        )
    }

    /// FB ConvNeXt keeps a few 2-D tensors in another shape of the same size as timm's.
    private func reshaped(_ tensor: Tensor, to shape: [Int]?) -> Tensor {
        guard tensor.rank == 2, let shape, shape != tensor.shape, shape.reduce(1, *) == tensor.count else {
            return tensor
        }
        return tensor.reshape(shape)
    }
}
