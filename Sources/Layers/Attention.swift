import Tensors

/// Multi-head self-attention over (B, N, C) tokens, timm's layout: one `qkv` projection to
/// 3C, heads of C / heads, a `proj` back to C.
public final class MultiHeadAttention: Layer {
    public let qkv: Linear
    public let proj: Linear
    public let heads: Int
    public var isTraining = true

    public init(dimensions: Int, heads: Int, qkvBias: Bool = true, generator: inout RandomGenerator) {
        ensure(
            heads >= 1 && dimensions % heads == 0,
            "MultiHeadAttention: width \(dimensions) not divisible by \(heads) heads")
        qkv = Linear(
            inputDimensions: dimensions, outputDimensions: 3 * dimensions, bias: qkvBias, generator: &generator)
        proj = Linear(inputDimensions: dimensions, outputDimensions: dimensions, generator: &generator)
        self.heads = heads
    }

    public var children: [(String, any Module)] { [("qkv", qkv), ("proj", proj)] }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        ensure(x.rank == 3, "MultiHeadAttention: input \(x.shape) must be (B, N, C)")
        return proj(packedSelfAttention(qkv(x), heads: heads))
    }
}
