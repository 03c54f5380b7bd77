/// Max, average and adaptive average pooling over NCHW planes.

private func poolGeometry(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int), op: String)
    -> ConvGeometry
{
    ensure(x.rank == 4, "\(op): input \(x.shape) must be (N, C, H, W)")
    let g = ConvGeometry(
        inputHeight: x.shape[2], inputWidth: x.shape[3], kernelHeight: kernel.0, kernelWidth: kernel.1,
        strideHeight: stride.0, strideWidth: stride.1, paddingHeight: padding.0, paddingWidth: padding.1)
    ensure(
        kernel.0 >= 1 && kernel.1 >= 1 && stride.0 >= 1 && stride.1 >= 1 && padding.0 * 2 <= kernel.0
            && padding.1 * 2 <= kernel.1
            && g.outputHeight >= 1 && g.outputWidth >= 1,
        "\(op): kernel \(kernel), stride \(stride), padding \(padding) invalid for input \(x.shape)")
    return g
}

/// Max pooling; padding counts as -infinity. Gradients go to the first maximum of each window.
public func maxPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0))
    -> Tensor
{
    let g = poolGeometry(x, kernel: kernel, stride: stride ?? kernel, padding: padding, op: "maxPool2d")
    let planes = x.shape[0] * x.shape[1]
    let inPlane = g.inputHeight * g.inputWidth, outPlane = g.outputHeight * g.outputWidth
    let out = Tensor(uninitializedShape: [x.shape[0], x.shape[1], g.outputHeight, g.outputWidth])
    // Winning positions within the input plane, stored as Floats (exact below 2^24) so the
    // buffer comes from the pool like every other.
    let argmax = Tensor(uninitializedShape: out.shape)
    let px = x.data, po = out.data, pa = argmax.data
    // Windows wholly inside the plane (all but the border ones) skip the bounds checks.
    let interiorX = (0..<g.outputWidth).filter {
        $0 * g.strideWidth - g.paddingWidth >= 0 && $0 * g.strideWidth - g.paddingWidth + g.kernelWidth <= g.inputWidth
    }
    let firstInteriorX = interiorX.first ?? g.outputWidth, interiorEndX = (interiorX.last ?? -1) + 1
    parallelFor(planes) { range in
        for p in range {
            let src = px + p * inPlane
            for oy in 0..<g.outputHeight {
                let y0 = oy * g.strideHeight - g.paddingHeight
                let rowsInside = y0 >= 0 && y0 + g.kernelHeight <= g.inputHeight
                for ox in 0..<g.outputWidth {
                    if rowsInside && ox >= firstInteriorX && ox < interiorEndX {
                        // The first tap starts the search, later ones replace it only when larger.
                        let x0 = ox * g.strideWidth - g.paddingWidth
                        var bestIndex = y0 * g.inputWidth + x0
                        var best = src[bestIndex]
                        for ky in 0..<g.kernelHeight {
                            let row = (y0 + ky) * g.inputWidth + x0
                            for kx in 0..<g.kernelWidth where src[row + kx] > best {
                                best = src[row + kx]
                                bestIndex = row + kx
                            }
                        }
                        po[p * outPlane + oy * g.outputWidth + ox] = best
                        pa[p * outPlane + oy * g.outputWidth + ox] = Float(bestIndex)
                        continue
                    }
                    var best = -Float.infinity, bestIndex = -1
                    for ky in 0..<g.kernelHeight {
                        let iy = oy * g.strideHeight + ky - g.paddingHeight
                        if iy < 0 || iy >= g.inputHeight { continue }
                        for kx in 0..<g.kernelWidth {
                            let ix = ox * g.strideWidth + kx - g.paddingWidth
                            if ix < 0 || ix >= g.inputWidth { continue }
                            let v = src[iy * g.inputWidth + ix]
                            if v > best || bestIndex < 0 {
                                best = v
                                bestIndex = iy * g.inputWidth + ix
                            }
                        }
                    }
                    po[p * outPlane + oy * g.outputWidth + ox] = best
                    pa[p * outPlane + oy * g.outputWidth + ox] = Float(bestIndex)
                }
            }
        }
    }
    let node = x.node
    Tape.current.record(out, inputs: [x], family: .pooling) { gy in
        let gx = Tensor(zeros: node.shape)
        let pg = gy.data, pgx = gx.data, pa = argmax.data
        parallelFor(planes) { range in
            for p in range {
                for i in 0..<outPlane { pgx[p * inPlane + Int(pa[p * outPlane + i])] += pg[p * outPlane + i] }
            }
        }
        accumulateGradient(node, gx)
    }
    return out
}

/// Average pooling; zero padding is counted in the divisor (PyTorch's count_include_pad=True).
public func avgPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0))
    -> Tensor
{
    let g = poolGeometry(x, kernel: kernel, stride: stride ?? kernel, padding: padding, op: "avgPool2d")
    let windows = (0..<g.outputHeight).flatMap { oy in
        (0..<g.outputWidth).map { ox -> (Int, Int, Int, Int) in
            let y0 = oy * g.strideHeight - g.paddingHeight, x0 = ox * g.strideWidth - g.paddingWidth
            return (y0, min(y0 + g.kernelHeight, g.inputHeight), x0, min(x0 + g.kernelWidth, g.inputWidth))
        }
    }
    return windowAverage(x, outputHeight: g.outputHeight, outputWidth: g.outputWidth, windows: windows) { _ in
        Float(g.kernelHeight * g.kernelWidth)
    }
}

/// Adaptive average pooling to (outH, outW) with PyTorch's window bounds
/// [floor(i H / outH), ceil((i + 1) H / outH)).
public func adaptiveAvgPool2d(_ x: Tensor, outputSize: (Int, Int)) -> Tensor {
    ensure(
        x.rank == 4 && outputSize.0 >= 1 && outputSize.1 >= 1,
        "adaptiveAvgPool2d: input \(x.shape), output size \(outputSize)")
    let h = x.shape[2], w = x.shape[3], oh = outputSize.0, ow = outputSize.1
    let windows = (0..<oh).flatMap { oy in
        (0..<ow).map { ox -> (Int, Int, Int, Int) in
            (oy * h / oh, ((oy + 1) * h + oh - 1) / oh, ox * w / ow, ((ox + 1) * w + ow - 1) / ow)
        }
    }
    return windowAverage(x, outputHeight: oh, outputWidth: ow, windows: windows) { window in
        Float((window.1 - window.0) * (window.3 - window.2))
    }
}

/// Shared by the average pools: windows are (y0, y1, x0, x1) clipped to the image.
private func windowAverage(
    _ x: Tensor, outputHeight: Int, outputWidth: Int, windows: [(Int, Int, Int, Int)],
    divisor: ((Int, Int, Int, Int)) -> Float
) -> Tensor {
    let planes = x.shape[0] * x.shape[1], width = x.shape[3]
    let inPlane = x.shape[2] * width, outPlane = outputHeight * outputWidth
    let inverse = windows.map { 1 / divisor($0) }
    let clipped = windows.map { (max($0.0, 0), $0.1, max($0.2, 0), $0.3) }
    let out = Tensor(uninitializedShape: [x.shape[0], x.shape[1], outputHeight, outputWidth])
    let px = x.data, po = out.data
    parallelFor(planes) { range in
        for p in range {
            let src = px + p * inPlane
            for (i, w) in clipped.enumerated() {
                var total: Float = 0
                for y in w.0..<max(w.0, w.1) { for xx in w.2..<max(w.2, w.3) { total += src[y * width + xx] } }
                po[p * outPlane + i] = total * inverse[i]
            }
        }
    }
    let node = x.node
    Tape.current.record(out, inputs: [x], family: .pooling) { gy in
        let gx = Tensor(zeros: node.shape)
        let pg = gy.data, pgx = gx.data
        parallelFor(planes) { range in
            for p in range {
                let dst = pgx + p * inPlane
                for (i, w) in clipped.enumerated() {
                    let v = pg[p * outPlane + i] * inverse[i]
                    for y in w.0..<max(w.0, w.1) { for xx in w.2..<max(w.2, w.3) { dst[y * width + xx] += v } }
                }
            }
        }
        accumulateGradient(node, gx)
    }
    return out
}
