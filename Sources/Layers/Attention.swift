import Tensors

/// Multi-head self-attention over (B, N, C) tokens, timm's layout: one `qkv` projection to
/// 3C, heads of C / heads, a `proj` back to C.
public final class MultiHeadAttention: Layer {
    public let qkv: Linear
    public let proj: Linear
    public let heads: Int
    public var isTraining = true

    public init(dimensions: Int, heads: Int, qkvBias: Bool = true, generator: inout RandomGenerator) {
        ensure(heads >= 1 && dimensions % heads == 0, "MultiHeadAttention: width \(dimensions) not divisible by \(heads) heads")
        qkv = Linear(inputDimensions: dimensions, outputDimensions: 3 * dimensions, bias: qkvBias, generator: &generator)
        proj = Linear(inputDimensions: dimensions, outputDimensions: dimensions, generator: &generator)
        self.heads = heads
    }

    public var children: [(String, any Module)] { [("qkv", qkv), ("proj", proj)] }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        ensure(x.rank == 3, "MultiHeadAttention: input \(x.shape) must be (B, N, C)")
        let b = x.shape[0], n = x.shape[1], c = x.shape[2]
        let headWidth = c / heads
        // (B, N, 3, H, D) -> (3, B, H, N, D)
        let packed = qkv(x).reshape([b, n, 3, heads, headWidth]).permute([2, 0, 3, 1, 4])
        let parts = packed.split([1, 1, 1], axis: 0).map { $0.reshape([b, heads, n, headWidth]) }
        let attended = scaledDotProductAttention(query: parts[0], key: parts[1], value: parts[2])
        return proj(attended.permute([0, 2, 1, 3]).reshape([b, n, c]))
    }
}
