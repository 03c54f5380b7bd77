/// residual + gamma * branch, with the branch channels last: out[n, c, h, w] = residual[n, c, h,
/// w] + gamma[c] * branch[n, h, w, c]. ConvNeXt's block end (`x + (mlp(...) * gamma).permute(0,
/// 3, 1, 2)`) in one pass over the three tensors instead of a scale, a permuted copy and a sum.
public func layerScaledResidual(_ residual: Tensor, branchChannelsLast branch: Tensor, gamma: Tensor) -> Tensor {
    let shape = residual.shape
    ensure(
        residual.rank == 4 && branch.shape == [shape[0], shape[2], shape[3], shape[1]] && gamma.shape == [shape[1]],
        "layerScaledResidual: residual \(shape), branch \(branch.shape) and gamma \(gamma.shape) are not (N, C, H, W), (N, H, W, C) and (C)"
    )
    let images = shape[0], channels = shape[1], plane = shape[2] * shape[3]
    let out = Tensor(uninitializedShape: shape)
    let (pr, pb, pg, po) = (residual.data, branch.data, gamma.data, out.data)
    // A row per (image, channel), as a permuted copy walks it: the residual and the output
    // contiguous, the branch gathered a channel at a time (its lines stay cached for the next).
    parallelFor(images * channels, grain: max(1, 16384 / plane)) { rows in
        for row in rows {
            let n = row / channels, c = row % channels, scale = pg[c]
            let (source, first) = (pb + n * plane * channels + c, row * plane)
            for q in 0..<plane { po[first + q] = pr[first + q] + scale * source[q * channels] }
        }
    }
    let inputs = [residual, branch, gamma]
    guard Tape.current.recording(inputs, family: .elementwise) else { return out }
    let (residualNode, branchNode, gammaNode) = (residual.node, branch.node, gamma.node)
    let savedBranch = gamma.requiresGrad ? SavedActivation(branch, precision: .float32) : nil
    Tape.current.record(out, inputs: inputs, family: .elementwise) { g in
        let pgo = g.data
        if residualNode.requiresGrad { accumulateGradient(residualNode, g) }
        if branchNode.requiresGrad {
            // A row per (image, position) of the channels-last gradient, gathered across channels.
            let gb = Tensor(uninitializedShape: branchNode.shape)
            let pgb = gb.data
            parallelFor(images * plane, grain: max(1, 16384 / channels)) { rows in
                for row in rows {
                    let n = row / plane, q = row % plane
                    let (source, target) = (pgo + n * channels * plane + q, pgb + row * channels)
                    for c in 0..<channels { target[c] = pg[c] * source[c * plane] }
                }
            }
            accumulateGradient(branchNode, gb)
        }
        if let savedBranch {
            // Per (image, channel), then summed over images in order (the same on any threads).
            let perImage = Tensor(uninitializedShape: [images, channels])
            let pp = perImage.data
            savedBranch.withValues { branch in
                let pb = branch.data
                parallelFor(images * channels, grain: max(1, 16384 / plane)) { rows in
                    for row in rows {
                        let n = row / channels, c = row % channels
                        let (source, first) = (pb + n * plane * channels + c, row * plane)
                        var sum: Float = 0
                        for q in 0..<plane { sum += pgo[first + q] * source[q * channels] }
                        pp[row] = sum
                    }
                }
            }
            accumulateGradient(gammaNode, perImage.sum(axes: [0]))
        }
    }
    return out
}
