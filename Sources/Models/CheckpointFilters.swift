import Tensors

/// Which of timm's `checkpoint_filter_fn`s a model's older checkpoints need (its registry
/// entry names it; `ModelFiles` applies it when importing weights).
public enum CheckpointFilter: Sendable {
    case none
    /// `swin_transformer.py`: buffers dropped; before timm 0.9 each stage's patch merging sat at
    /// the end of the previous stage and the classifier was `head`.
    case swin
    /// `convnext.py`: facebookresearch/ConvNeXt's names (`downsample_layers`, `dwconv`, `pwconv`, `norm`, `head`).
    case convnext
    /// `vision_transformer.py`: a linear patch embedding of early timm ViTs as a convolution;
    /// the unused `pre_logits` layer dropped.
    case visionTransformer
    /// `mlp_mixer.py`: facebookresearch/deit's ResMLP names (`patch_embed`, `attn`, `mlp`, `gamma_`).
    case resmlp
}
