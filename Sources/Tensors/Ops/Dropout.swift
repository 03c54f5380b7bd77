/// Inverted dropout: in training, zeroes each element with probability p and scales the rest
/// by 1 / (1 - p); the identity otherwise.
public func dropout(_ x: Tensor, probability p: Float, training: Bool, generator: inout RandomGenerator) -> Tensor {
    ensure(p >= 0 && p < 1, "dropout: probability \(p) outside [0, 1)")
    guard training && p > 0 else { return x }
    let mask = Tensor(uninitializedShape: x.shape)
    let keep = 1 / (1 - p)
    let pm = mask.data
    for i in 0..<x.count { pm[i] = generator.nextUniform() < p ? 0 : keep }
    let out = Tensor(uninitializedShape: x.shape)
    let px = x.data, po = out.data
    for i in 0..<x.count { po[i] = px[i] * pm[i] }
    let node = x.node
    Tape.current.record(out, inputs: [x], family: .elementwise) { g in
        let pm = mask.data
        let gx = Tensor(uninitializedShape: node.shape)
        for i in 0..<gx.count { gx.data[i] = g.data[i] * pm[i] }
        accumulateGradient(node, gx)
    }
    return out
}

/// Dropout drawing from the process-wide generator.
public func dropout(_ x: Tensor, probability p: Float, training: Bool) -> Tensor {
    dropout(x, probability: p, training: training, generator: &GlobalRandom.generator)
}

/// Stochastic depth (timm's `DropPath`): in training, drops the whole residual branch of each
/// sample with probability p and scales the kept ones by 1 / (1 - p); the identity otherwise.
/// Drawn from the process-wide generator, which checkpoints save.
public func dropPath(_ x: Tensor, probability p: Float, training: Bool) -> Tensor {
    ensure(p >= 0 && p < 1, "dropPath: probability \(p) outside [0, 1)")
    guard training && p > 0 else { return x }
    let mask = Tensor(uninitializedShape: [x.shape[0]] + [Int](repeating: 1, count: x.rank - 1))
    for i in 0..<mask.count { mask.data[i] = GlobalRandom.generator.nextUniform() < p ? 0 : 1 / (1 - p) }
    return x * mask
}
