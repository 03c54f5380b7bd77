/// The weight gradient of a stride-1 depthwise convolution (ConvNeXt's 7x7, MobileNetV2's 3x3
/// at stride 1): for each channel and tap, the sum over images and pixels of the output gradient
/// times the shifted input. Each image's plane is copied once into a zero-padded plane and its
/// output gradient into rows padded to 8 columns, so every tap is whole 8-wide vector products
/// with no bounds to check: on ConvNeXt's small planes (8x8 and below at 32x32) a per-row dot
/// product was mostly call overhead. oneDNN 2.6 has no fast kernel for this (it unfolds).
struct DepthwiseWeightGradient {
    let geometry: ConvGeometry
    let channels: Int, multiplier: Int

    static func applies(to geometry: ConvGeometry) -> Bool {
        geometry.strideHeight == 1 && geometry.strideWidth == 1
    }

    private var stripWidth: Int { (geometry.outputWidth + 7) / 8 * 8 }
    private var paddedHeight: Int { geometry.outputHeight + geometry.kernelHeight - 1 }
    private var paddedWidth: Int { stripWidth + geometry.kernelWidth - 1 }

    /// Adds the gradient of the (channels x multiplier, 1, kh, kw) weight into `gw`.
    func accumulate(
        _ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, batch: Int, into gw: UnsafeMutablePointer<Float>
    ) {
        let g = geometry
        let outChannels = channels * multiplier
        let taps = g.kernelHeight * g.kernelWidth
        let inPlane = g.inputHeight * g.inputWidth, outPlane = g.outputHeight * g.outputWidth
        let columns = (0..<g.kernelWidth).filter { g.validColumns(kx: $0).0 < g.validColumns(kx: $0).1 }
        parallelFor(outChannels) { range in
            let padded = Tensor(uninitializedShape: [paddedHeight * paddedWidth])
            let rows = Tensor(uninitializedShape: [g.outputHeight * stripWidth])
            let sums = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: taps)
            defer { sums.deallocate() }
            let p = padded.data, r = rows.data
            for c in range {
                sums.initialize(repeating: .zero, count: taps)
                for n in 0..<batch {
                    fill(p, from: x + (n * channels + c / multiplier) * inPlane)
                    let gyc = gy + (n * outChannels + c) * outPlane
                    r.update(repeating: 0, count: g.outputHeight * stripWidth)
                    for oy in 0..<g.outputHeight {
                        (r + oy * stripWidth).update(from: gyc + oy * g.outputWidth, count: g.outputWidth)
                    }
                    // Taps that only ever see padding have a zero gradient. A row's kernel
                    // columns are independent sums (no chain of dependent adds); each strip of
                    // the output gradient is loaded once for all of them.
                    for ky in g.validKernelRows {
                        let row = sums + ky * g.kernelWidth
                        for oy in 0..<g.outputHeight {
                            let source = p + (oy + ky) * paddedWidth, gradient = r + oy * stripWidth
                            for strip in stride(from: 0, to: stripWidth, by: 8) {
                                let gv = load(gradient + strip)
                                for kx in columns { row[kx] += gv * load(source + strip + kx) }
                            }
                        }
                    }
                }
                for k in 0..<taps { gw[c * taps + k] += sums[k].sum() }
            }
        }
    }

    /// The input plane at (paddingHeight, paddingWidth) of a zeroed padded plane.
    private func fill(_ p: UnsafeMutablePointer<Float>, from plane: UnsafePointer<Float>) {
        let g = geometry
        p.update(repeating: 0, count: paddedHeight * paddedWidth)
        for iy in 0..<g.inputHeight {
            (p + (iy + g.paddingHeight) * paddedWidth + g.paddingWidth).update(
                from: plane + iy * g.inputWidth, count: g.inputWidth)
        }
    }

    @inline(__always)
    private func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    private func load(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
}
