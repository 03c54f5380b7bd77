import Tensors

/// Scales all gradients so that their global L2 norm is at most `maxNorm` (PyTorch's
/// clip_grad_norm_, including its 1e-6 in the denominator). Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [Tensor], maxNorm: Float) -> Float {
    clipGradientNorm(parameters, maxNorm: maxNorm, total: { $0 })
}

/// The same over a shard of the gradient: `total` turns the local sum of squares into the
/// global one (a sum over the ranks).
@discardableResult
public func clipGradientNorm(_ parameters: [Tensor], maxNorm: Float, total: (Double) throws -> Double) rethrows -> Float
{
    var local = 0.0
    for p in parameters { if let g = p.grad { local += sumOfSquares(g.data, count: g.count) } }
    let norm = Float(try total(local).squareRoot())
    let factor = maxNorm / (norm + 1e-6)
    if factor < 1 {
        for p in parameters { if let g = p.grad { scale(g.data, by: factor, into: g.data, count: g.count) } }
    }
    return norm
}
