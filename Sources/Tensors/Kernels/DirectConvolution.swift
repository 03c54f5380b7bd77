/// Stride-1 3x3 convolution computed directly, without unfolding. Each image's planes are
/// zero-padded once, and outputs are taken in the padded plane's row layout (y * paddedWidth + x):
/// there a run of consecutive outputs reads the input at nine fixed offsets, so a tile of 4 output
/// channels x 24 outputs keeps 12 vector accumulators in registers over every input channel and
/// tap (12 multiply-adds per 3 input loads and 4 weight broadcasts). The two outputs at each row
/// end that fall on padding are computed and dropped. im2col + GEMM with 16 or 32 output channels
/// is bound by OpenBLAS's packing (40-60% of its sgemm rate on those shapes); this is not.
struct DirectConvolution {
    /// Outputs per tile: three 8-float vectors.
    static let tile = 24
    /// Output channels per tile.
    static let block = 4

    let inChannels, outChannels: Int
    let geometry: ConvGeometry

    static func applies(to g: ConvGeometry, groups: Int) -> Bool {
        groups == 1 && g.kernelHeight == 3 && g.kernelWidth == 3 && g.strideHeight == 1 && g.strideWidth == 1
            && g.paddingHeight <= 2 && g.paddingWidth <= 2
    }

    var paddedWidth: Int { geometry.inputWidth + 2 * geometry.paddingWidth }
    var paddedPlane: Int { paddedWidth * (geometry.inputHeight + 2 * geometry.paddingHeight) }
    var outputPlane: Int { geometry.outputHeight * geometry.outputWidth }
    /// Outputs per channel in padded-row layout, rounded up to whole tiles.
    var span: Int { (geometry.outputHeight * paddedWidth + Self.tile - 1) / Self.tile * Self.tile }
    /// Floats of one padded image: the last tile of the last channel reads up to two rows and two
    /// columns past its outputs.
    var paddedCount: Int { (inChannels - 1) * paddedPlane + max(paddedPlane, span + 2 * paddedWidth + 2) }
    /// Floats of the weights packed for the tiles.
    var packedCount: Int { outChannels * inChannels * 9 }

    /// Packs (out, in, 3, 3) weights as [block][in][tap][4] for the full blocks of 4 output
    /// channels (so a tile's four weights per tap are adjacent); the remaining channels keep the
    /// original layout.
    func pack(_ w: UnsafePointer<Float>, into packed: UnsafeMutablePointer<Float>) {
        let fullBlocks = outChannels / Self.block
        for b in 0..<fullBlocks {
            for i in 0..<inChannels {
                for k in 0..<9 {
                    for j in 0..<Self.block {
                        packed[((b * inChannels + i) * 9 + k) * Self.block + j] =
                            w[((b * Self.block + j) * inChannels + i) * 9 + k]
                    }
                }
            }
        }
        let done = fullBlocks * Self.block * inChannels * 9
        (packed + done).update(from: w + done, count: packedCount - done)
    }

    /// Copies the input planes of one image into the zero-padded layout.
    func pad(_ x: UnsafePointer<Float>, into padded: UnsafeMutablePointer<Float>) {
        let g = geometry
        padded.update(repeating: 0, count: paddedCount)
        for c in 0..<inChannels {
            for y in 0..<g.inputHeight {
                let target = padded + c * paddedPlane + (y + g.paddingHeight) * paddedWidth + g.paddingWidth
                target.update(from: x + (c * g.inputHeight + y) * g.inputWidth, count: g.inputWidth)
            }
        }
    }

    /// y = conv(x, w) + b for one image. `packed` holds `pack(w)`; `padded` has room for
    /// `paddedCount` floats and `result` for outChannels x span.
    func forward(
        _ x: UnsafePointer<Float>, packed: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        _ y: UnsafeMutablePointer<Float>,
        padded: UnsafeMutablePointer<Float>, result: UnsafeMutablePointer<Float>
    ) {
        pad(x, into: padded)
        let fullBlocks = outChannels / Self.block
        for b in 0..<fullBlocks {
            let weights = packed + b * inChannels * 9 * Self.block
            let out = result + b * Self.block * span
            for t in stride(from: 0, to: span, by: Self.tile) {
                tile4x24(padded + t, weights, out + t)
            }
        }
        for c in fullBlocks * Self.block..<outChannels {
            for t in stride(from: 0, to: span, by: Self.tile) {
                tile1x24(padded + t, packed + c * inChannels * 9, result + c * span + t)
            }
        }
        let g = geometry
        for c in 0..<outChannels {
            let shift = bias?[c] ?? 0
            for row in 0..<g.outputHeight {
                let source = result + c * span + row * paddedWidth
                let target = y + c * outputPlane + row * g.outputWidth
                for k in 0..<g.outputWidth { target[k] = source[k] + shift }
            }
        }
    }

    /// Adds dL/dw for one image into gw (original (out, in, 3, 3) layout). `padded` and
    /// `gradient` are scratch of `paddedCount` and outChannels x span floats.
    func weightGradient(
        _ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, into gw: UnsafeMutablePointer<Float>,
        padded: UnsafeMutablePointer<Float>, gradient: UnsafeMutablePointer<Float>
    ) {
        pad(x, into: padded)
        // The output gradient in padded-row layout, zero on the dropped positions, so they add nothing.
        let g = geometry
        gradient.update(repeating: 0, count: outChannels * span)
        for c in 0..<outChannels {
            for row in 0..<g.outputHeight {
                (gradient + c * span + row * paddedWidth).update(
                    from: gy + c * outputPlane + row * g.outputWidth, count: g.outputWidth)
            }
        }
        let fullBlocks = outChannels / Self.block
        for b in 0..<fullBlocks {
            for i in 0..<inChannels {
                for ky in 0..<3 {
                    weightRows4(
                        padded + i * paddedPlane + ky * paddedWidth, gradient + b * Self.block * span,
                        into: gw + (b * Self.block * inChannels + i) * 9 + ky * 3)
                }
            }
        }
        for c in fullBlocks * Self.block..<outChannels {
            for i in 0..<inChannels {
                for ky in 0..<3 {
                    weightRow1(
                        padded + i * paddedPlane + ky * paddedWidth, gradient + c * span,
                        into: gw + (c * inChannels + i) * 9 + ky * 3)
                }
            }
        }
    }

    // MARK: Micro-kernels

    @inline(__always)
    private func load(_ p: UnsafePointer<Float>, _ offset: Int) -> SIMD8<Float> {
        UnsafeRawPointer(p + offset).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    private func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ offset: Int) {
        UnsafeMutableRawPointer(p + offset).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    /// 4 output channels x 24 outputs starting at `input` (the tile's first output position).
    private func tile4x24(
        _ input: UnsafePointer<Float>, _ weights: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>
    ) {
        var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a02 = SIMD8<Float>()
        var a10 = SIMD8<Float>(), a11 = SIMD8<Float>(), a12 = SIMD8<Float>()
        var a20 = SIMD8<Float>(), a21 = SIMD8<Float>(), a22 = SIMD8<Float>()
        var a30 = SIMD8<Float>(), a31 = SIMD8<Float>(), a32 = SIMD8<Float>()
        let width = paddedWidth, plane = paddedPlane
        for i in 0..<inChannels {
            let source = input + i * plane
            let w = weights + i * 9 * Self.block
            for ky in 0..<3 {
                for kx in 0..<3 {
                    let p = source + ky * width + kx
                    let v0 = load(p, 0), v1 = load(p, 8), v2 = load(p, 16)
                    let wk = w + (ky * 3 + kx) * Self.block
                    let w0 = SIMD8<Float>(repeating: wk[0])
                    a00 = multiplyAdd(v0, w0, a00)
                    a01 = multiplyAdd(v1, w0, a01)
                    a02 = multiplyAdd(v2, w0, a02)
                    let w1 = SIMD8<Float>(repeating: wk[1])
                    a10 = multiplyAdd(v0, w1, a10)
                    a11 = multiplyAdd(v1, w1, a11)
                    a12 = multiplyAdd(v2, w1, a12)
                    let w2 = SIMD8<Float>(repeating: wk[2])
                    a20 = multiplyAdd(v0, w2, a20)
                    a21 = multiplyAdd(v1, w2, a21)
                    a22 = multiplyAdd(v2, w2, a22)
                    let w3 = SIMD8<Float>(repeating: wk[3])
                    a30 = multiplyAdd(v0, w3, a30)
                    a31 = multiplyAdd(v1, w3, a31)
                    a32 = multiplyAdd(v2, w3, a32)
                }
            }
        }
        let s = span
        store(a00, out, 0)
        store(a01, out, 8)
        store(a02, out, 16)
        store(a10, out, s)
        store(a11, out, s + 8)
        store(a12, out, s + 16)
        store(a20, out, 2 * s)
        store(a21, out, 2 * s + 8)
        store(a22, out, 2 * s + 16)
        store(a30, out, 3 * s)
        store(a31, out, 3 * s + 8)
        store(a32, out, 3 * s + 16)
    }

    /// One output channel x 24 outputs; `weights` in the original (in, 3, 3) layout.
    private func tile1x24(
        _ input: UnsafePointer<Float>, _ weights: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>
    ) {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>()
        for i in 0..<inChannels {
            let source = input + i * paddedPlane
            for ky in 0..<3 {
                for kx in 0..<3 {
                    let p = source + ky * paddedWidth + kx
                    let w = SIMD8<Float>(repeating: weights[i * 9 + ky * 3 + kx])
                    a0 = multiplyAdd(load(p, 0), w, a0)
                    a1 = multiplyAdd(load(p, 8), w, a1)
                    a2 = multiplyAdd(load(p, 16), w, a2)
                }
            }
        }
        store(a0, out, 0)
        store(a1, out, 8)
        store(a2, out, 16)
    }

    /// dL/dw[c][i][ky][0..<3] += sum over outputs of gradient[c] * input shifted by kx, for the 4
    /// channels c of a block: 12 vector accumulators over the whole span.
    private func weightRows4(
        _ input: UnsafePointer<Float>, _ gradient: UnsafePointer<Float>, into gw: UnsafeMutablePointer<Float>
    ) {
        var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a02 = SIMD8<Float>()
        var a10 = SIMD8<Float>(), a11 = SIMD8<Float>(), a12 = SIMD8<Float>()
        var a20 = SIMD8<Float>(), a21 = SIMD8<Float>(), a22 = SIMD8<Float>()
        var a30 = SIMD8<Float>(), a31 = SIMD8<Float>(), a32 = SIMD8<Float>()
        let s = span
        for v in stride(from: 0, to: s, by: 8) {
            let x0 = load(input, v), x1 = load(input, v + 1), x2 = load(input, v + 2)
            let d0 = load(gradient, v)
            a00 = multiplyAdd(d0, x0, a00)
            a01 = multiplyAdd(d0, x1, a01)
            a02 = multiplyAdd(d0, x2, a02)
            let d1 = load(gradient, s + v)
            a10 = multiplyAdd(d1, x0, a10)
            a11 = multiplyAdd(d1, x1, a11)
            a12 = multiplyAdd(d1, x2, a12)
            let d2 = load(gradient, 2 * s + v)
            a20 = multiplyAdd(d2, x0, a20)
            a21 = multiplyAdd(d2, x1, a21)
            a22 = multiplyAdd(d2, x2, a22)
            let d3 = load(gradient, 3 * s + v)
            a30 = multiplyAdd(d3, x0, a30)
            a31 = multiplyAdd(d3, x1, a31)
            a32 = multiplyAdd(d3, x2, a32)
        }
        let rowStride = inChannels * 9
        gw[0] += a00.sum()
        gw[1] += a01.sum()
        gw[2] += a02.sum()
        gw[rowStride] += a10.sum()
        gw[rowStride + 1] += a11.sum()
        gw[rowStride + 2] += a12.sum()
        gw[2 * rowStride] += a20.sum()
        gw[2 * rowStride + 1] += a21.sum()
        gw[2 * rowStride + 2] += a22.sum()
        gw[3 * rowStride] += a30.sum()
        gw[3 * rowStride + 1] += a31.sum()
        gw[3 * rowStride + 2] += a32.sum()
    }

    private func weightRow1(
        _ input: UnsafePointer<Float>, _ gradient: UnsafePointer<Float>, into gw: UnsafeMutablePointer<Float>
    ) {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>()
        for v in stride(from: 0, to: span, by: 8) {
            let d = load(gradient, v)
            a0 = multiplyAdd(d, load(input, v), a0)
            a1 = multiplyAdd(d, load(input, v + 1), a1)
            a2 = multiplyAdd(d, load(input, v + 2), a2)
        }
        gw[0] += a0.sum()
        gw[1] += a1.sum()
        gw[2] += a2.sum()
    }
}
