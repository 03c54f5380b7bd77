/// Bilinear resize of NCHW planes with align_corners = false (PyTorch's
/// `interpolate(mode="bilinear")`): source coordinate (dst + 0.5) * in/out - 0.5, clamped at 0.
public func bilinearResize(_ x: Tensor, size: (Int, Int)) -> Tensor {
    ensure(x.rank == 4 && size.0 >= 1 && size.1 >= 1, "bilinearResize: input \(x.shape), size \(size)")
    let h = x.shape[2], w = x.shape[3], oh = size.0, ow = size.1
    if h == oh && w == ow { return x }
    func taps(_ inSize: Int, _ outSize: Int) -> [(Int, Int, Float)] {
        let scale = Float(inSize) / Float(outSize)
        return (0..<outSize).map { o in
            let source = max(0, (Float(o) + 0.5) * scale - 0.5)
            let i0 = min(Int(source), inSize - 1)
            let i1 = min(i0 + 1, inSize - 1)
            return (i0, i1, source - Float(i0))
        }
    }
    let rows = taps(h, oh), columns = taps(w, ow)
    let planes = x.shape[0] * x.shape[1]
    let out = Tensor(uninitializedShape: [x.shape[0], x.shape[1], oh, ow])
    let px = x.data, po = out.data
    parallelFor(planes) { range in
        for p in range {
            let src = px + p * h * w, dst = po + p * oh * ow
            for (oy, r) in rows.enumerated() {
                let top = src + r.0 * w, bottom = src + r.1 * w
                for (ox, c) in columns.enumerated() {
                    let upper = top[c.0] + (top[c.1] - top[c.0]) * c.2
                    let lower = bottom[c.0] + (bottom[c.1] - bottom[c.0]) * c.2
                    dst[oy * ow + ox] = upper + (lower - upper) * r.2
                }
            }
        }
    }
    let node = x.node
    Tape.current.record(out, inputs: [x], family: .copies) { gy in
        let gx = Tensor(zeros: node.shape)
        let pg = gy.data, pgx = gx.data
        parallelFor(planes) { range in
            for p in range {
                let src = pg + p * oh * ow, dst = pgx + p * h * w
                for (oy, r) in rows.enumerated() {
                    for (ox, c) in columns.enumerated() {
                        let v = src[oy * ow + ox]
                        dst[r.0 * w + c.0] += v * (1 - r.2) * (1 - c.2)
                        dst[r.0 * w + c.1] += v * (1 - r.2) * c.2
                        dst[r.1 * w + c.0] += v * r.2 * (1 - c.2)
                        dst[r.1 * w + c.1] += v * r.2 * c.2
                    }
                }
            }
        }
        accumulateGradient(node, gx)
    }
    return out
}
