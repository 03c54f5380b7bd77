/// Convolution with output channels in the vector lanes, for small planes and strides, where
/// `DirectConvolution` (outputs in the lanes) would spend most lanes on padding and im2col +
/// GEMM runs narrow products (8x8 planes with 32 channels: OpenBLAS at ~50% of its sgemm rate).
/// A tile is 16 output channels x 6 output pixels in 12 vector accumulators: per input channel
/// and tap, two weight vectors and six broadcast inputs feed 12 multiply-adds. Pixels are taken
/// across the images of a group, so a 2x2 band wastes nothing. Weights are packed as
/// [block][in][tap][16]; inputs are zero-padded per image, so every tap reads a valid address.
/// The input gradient of a strided convolution (not itself a convolution) runs the same way with
/// input channels in the lanes (`inputGradient`).
struct ChannelLaneConvolution {
    /// Output channels per tile: two 8-float vectors.
    static let lanes = 16
    /// Output pixels per tile.
    static let pixels = 6
    /// Floats of padded input per image group (512 KiB, inside L2).
    static let groupBudget = 128 * 1024

    let inChannels, outChannels: Int
    let geometry: ConvGeometry

    static func applies(outChannels: Int, groups: Int) -> Bool { groups == 1 && outChannels % lanes == 0 }

    var taps: Int { geometry.kernelHeight * geometry.kernelWidth }
    var paddedWidth: Int { geometry.inputWidth + 2 * geometry.paddingWidth }
    var paddedPlane: Int { paddedWidth * (geometry.inputHeight + 2 * geometry.paddingHeight) }
    var inputPlane: Int { geometry.inputHeight * geometry.inputWidth }
    var outputPlane: Int { geometry.outputHeight * geometry.outputWidth }
    var packedCount: Int { outChannels * inChannels * taps }

    /// Images per group: as many as fit the padded-input budget.
    func imagesPerGroup(_ images: Int) -> Int {
        max(1, min(images, Self.groupBudget / max(1, inChannels * paddedPlane)))
    }

    /// Offsets of every (input channel, tap) pair within a padded image, in weight order. One
    /// flat loop over them keeps all accumulators in registers (nested loops spilled half).
    private var combinations: [Int] {
        var offsets: [Int] = []
        for i in 0..<inChannels {
            for ky in 0..<geometry.kernelHeight {
                for kx in 0..<geometry.kernelWidth { offsets.append(i * paddedPlane + ky * paddedWidth + kx) }
            }
        }
        return offsets
    }

    /// Offset of each output pixel's window in the padded buffer of `images` images.
    private func pixelOffsets(images: Int) -> [Int] {
        let g = geometry
        var offsets: [Int] = []
        offsets.reserveCapacity(images * outputPlane)
        for n in 0..<images {
            for oy in 0..<g.outputHeight {
                for ox in 0..<g.outputWidth {
                    offsets.append(
                        n * inChannels * paddedPlane + oy * g.strideHeight * paddedWidth + ox * g.strideWidth)
                }
            }
        }
        return offsets
    }

    /// Packs (out, in, kh, kw) weights as [block of 16 outputs][in][tap][16].
    func pack(_ w: UnsafePointer<Float>, into packed: UnsafeMutablePointer<Float>) {
        let l = Self.lanes
        for o in 0..<outChannels {
            for i in 0..<inChannels {
                for k in 0..<taps {
                    packed[(((o / l) * inChannels + i) * taps + k) * l + o % l] = w[(o * inChannels + i) * taps + k]
                }
            }
        }
    }

    /// Zero-pads `count` images (each inChannels planes) into `padded`.
    private func pad(_ x: UnsafePointer<Float>, images count: Int, into padded: UnsafeMutablePointer<Float>) {
        let g = geometry
        padded.update(repeating: 0, count: count * inChannels * paddedPlane)
        for plane in 0..<count * inChannels {
            for y in 0..<g.inputHeight {
                (padded + plane * paddedPlane + (y + g.paddingHeight) * paddedWidth + g.paddingWidth)
                    .update(from: x + (plane * g.inputHeight + y) * g.inputWidth, count: g.inputWidth)
            }
        }
    }

    /// y = conv(x, w) + b for `images`, x and y pointing at the first image. `packed` holds
    /// `pack(w)`; `padded` has room for `imagesPerGroup` padded images.
    func forward(
        _ x: UnsafePointer<Float>, packed: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        _ y: UnsafeMutablePointer<Float>,
        images: Int, padded: UnsafeMutablePointer<Float>
    ) {
        let perGroup = imagesPerGroup(images)
        let combinations = self.combinations
        for first in stride(from: 0, to: images, by: perGroup) {
            let count = min(perGroup, images - first)
            pad(x + first * inChannels * inputPlane, images: count, into: padded)
            let pixels = pixelOffsets(images: count)
            let yGroup = y + first * outChannels * outputPlane
            combinations.withUnsafeBufferPointer { combinations in
                pixels.withUnsafeBufferPointer { pixels in
                    for block in 0..<outChannels / Self.lanes {
                        let weights = packed + block * combinations.count * Self.lanes
                        for start in stride(from: 0, to: pixels.count, by: Self.pixels) {
                            forwardTile(
                                padded, weights, combinations, pixels, start: start, bias: bias, y: yGroup,
                                firstChannel: block * Self.lanes)
                        }
                    }
                }
            }
        }
    }

    /// Adds dL/dw for `images` into `weightGradient`, laid out [in][tap][out] (`addTransposed`
    /// moves it to (out, in, kh, kw)). `padded` has room for `imagesPerGroup` padded images and
    /// `gradient` for their output gradients, pixel-major.
    func weightGradient(
        _ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, into weightGradient: UnsafeMutablePointer<Float>,
        images: Int, padded: UnsafeMutablePointer<Float>, gradient: UnsafeMutablePointer<Float>
    ) {
        let perGroup = imagesPerGroup(images)
        let combinations = self.combinations
        for first in stride(from: 0, to: images, by: perGroup) {
            let count = min(perGroup, images - first)
            pad(x + first * inChannels * inputPlane, images: count, into: padded)
            let pixels = pixelOffsets(images: count)
            // Output gradient transposed to [pixel][out channel], so a pixel's channels load as vectors.
            let gyGroup = gy + first * outChannels * outputPlane
            for n in 0..<count {
                for c in 0..<outChannels {
                    let source = gyGroup + (n * outChannels + c) * outputPlane
                    for p in 0..<outputPlane { gradient[(n * outputPlane + p) * outChannels + c] = source[p] }
                }
            }
            combinations.withUnsafeBufferPointer { combinations in
                pixels.withUnsafeBufferPointer { pixels in
                    // Pixel chunks keep a block's gradients (256 x 16 floats) in L1 across combinations.
                    for start in stride(from: 0, to: pixels.count, by: 256) {
                        let end = min(pixels.count, start + 256)
                        for block in 0..<outChannels / Self.lanes {
                            for combination in stride(from: 0, to: combinations.count, by: Self.pixels) {
                                weightTile(
                                    padded, gradient + block * Self.lanes, combinations, combination: combination,
                                    pixels, range: start..<end, into: weightGradient + block * Self.lanes)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Packs (out, in, kh, kw) weights for the input gradient, input channels in the lanes:
    /// [block of 16 inputs][tap][out][16]. Needs inChannels % 16 == 0.
    func packForInputGradient(_ w: UnsafePointer<Float>, into packed: UnsafeMutablePointer<Float>) {
        let l = Self.lanes
        for o in 0..<outChannels {
            for i in 0..<inChannels {
                for k in 0..<taps {
                    packed[(((i / l) * taps + k) * outChannels + o) * l + i % l] = w[(o * inChannels + i) * taps + k]
                }
            }
        }
    }

    /// Adds dL/dx for `images` into gx (NCHW, pointing at the first image): the transposed
    /// convolution, for strided convolutions, whose input gradient is not itself a convolution.
    /// A tile of 6 output pixels x 16 input channels sums over the output channels per tap, then
    /// adds into the padded pixel-major gradient `scratch` (room for `imagesPerGroup` images of
    /// paddedPlane x inChannels) at the tap's input pixels. `packed` holds `packForInputGradient(w)`.
    func inputGradient(
        _ gy: UnsafePointer<Float>, packed: UnsafePointer<Float>, into gx: UnsafeMutablePointer<Float>,
        images: Int, scratch: UnsafeMutablePointer<Float>
    ) {
        let g = geometry
        let perGroup = imagesPerGroup(images)
        var tapOffsets: [Int] = []
        for ky in 0..<g.kernelHeight {
            for kx in 0..<g.kernelWidth { tapOffsets.append(ky * paddedWidth + kx) }
        }
        for first in stride(from: 0, to: images, by: perGroup) {
            let count = min(perGroup, images - first)
            scratch.update(repeating: 0, count: count * paddedPlane * inChannels)
            // Per output pixel: its window's first padded pixel, and its first output gradient.
            var windows: [Int] = [], gradients: [Int] = []
            for n in 0..<count {
                for oy in 0..<g.outputHeight {
                    for ox in 0..<g.outputWidth {
                        windows.append(n * paddedPlane + oy * g.strideHeight * paddedWidth + ox * g.strideWidth)
                        gradients.append(n * outChannels * outputPlane + oy * g.outputWidth + ox)
                    }
                }
            }
            let gyGroup = gy + first * outChannels * outputPlane
            windows.withUnsafeBufferPointer { windows in
                gradients.withUnsafeBufferPointer { gradients in
                    for block in 0..<inChannels / Self.lanes {
                        for start in stride(from: 0, to: windows.count, by: Self.pixels) {
                            for (k, offset) in tapOffsets.enumerated() {
                                inputGradientTile(
                                    gyGroup, gradients, windows, start: start,
                                    weights: packed + (block * taps + k) * outChannels * Self.lanes,
                                    into: scratch + block * Self.lanes, tapOffset: offset)
                            }
                        }
                    }
                }
            }
            // Back to NCHW, without the padding.
            for n in 0..<count {
                for i in 0..<inChannels {
                    let target = gx + ((first + n) * inChannels + i) * inputPlane
                    for y in 0..<g.inputHeight {
                        let row =
                            scratch + (n * paddedPlane + (y + g.paddingHeight) * paddedWidth + g.paddingWidth)
                            * inChannels + i
                        for x in 0..<g.inputWidth { target[y * g.inputWidth + x] += row[x * inChannels] }
                    }
                }
            }
        }
    }

    /// gw[o][i][k] += transposed[(i * taps + k) * out + o].
    func addTransposed(_ transposed: UnsafePointer<Float>, into gw: UnsafeMutablePointer<Float>) {
        let rows = inChannels * taps
        for o in 0..<outChannels {
            for r in 0..<rows { gw[o * rows + r] += transposed[r * outChannels + o] }
        }
    }

    // MARK: Micro-kernels

    @inline(__always)
    private func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    /// 16 output channels from `firstChannel` x the 6 pixels from `start` (fewer at the end:
    /// the missing ones repeat the last pixel and are not stored).
    private func forwardTile(
        _ padded: UnsafePointer<Float>, _ weights: UnsafePointer<Float>, _ combinations: UnsafeBufferPointer<Int>,
        _ pixels: UnsafeBufferPointer<Int>, start: Int, bias: UnsafePointer<Float>?,
        y: UnsafeMutablePointer<Float>, firstChannel: Int
    ) {
        let valid = min(Self.pixels, pixels.count - start)
        let last = pixels.count - 1
        let p0 = padded + pixels[start], p1 = padded + pixels[min(start + 1, last)],
            p2 = padded + pixels[min(start + 2, last)]
        let p3 = padded + pixels[min(start + 3, last)], p4 = padded + pixels[min(start + 4, last)],
            p5 = padded + pixels[min(start + 5, last)]
        var a0 = SIMD8<Float>(), b0 = SIMD8<Float>(), a1 = SIMD8<Float>(), b1 = SIMD8<Float>()
        var a2 = SIMD8<Float>(), b2 = SIMD8<Float>(), a3 = SIMD8<Float>(), b3 = SIMD8<Float>()
        var a4 = SIMD8<Float>(), b4 = SIMD8<Float>(), a5 = SIMD8<Float>(), b5 = SIMD8<Float>()
        var w = weights
        for o in combinations {
            let low = load(w), high = load(w + 8)
            w += Self.lanes
            var v = SIMD8<Float>(repeating: p0[o])
            a0 = multiplyAdd(low, v, a0)
            b0 = multiplyAdd(high, v, b0)
            v = SIMD8<Float>(repeating: p1[o])
            a1 = multiplyAdd(low, v, a1)
            b1 = multiplyAdd(high, v, b1)
            v = SIMD8<Float>(repeating: p2[o])
            a2 = multiplyAdd(low, v, a2)
            b2 = multiplyAdd(high, v, b2)
            v = SIMD8<Float>(repeating: p3[o])
            a3 = multiplyAdd(low, v, a3)
            b3 = multiplyAdd(high, v, b3)
            v = SIMD8<Float>(repeating: p4[o])
            a4 = multiplyAdd(low, v, a4)
            b4 = multiplyAdd(high, v, b4)
            v = SIMD8<Float>(repeating: p5[o])
            a5 = multiplyAdd(low, v, a5)
            b5 = multiplyAdd(high, v, b5)
        }
        // Scatter to NCHW: pixel `start + j` is image q / outputPlane, position q % outputPlane.
        @inline(__always)
        func emit(_ j: Int, _ low: SIMD8<Float>, _ high: SIMD8<Float>) {
            guard j < valid else { return }
            let q = start + j
            let target = y + (q / outputPlane * outChannels + firstChannel) * outputPlane + q % outputPlane
            for l in 0..<8 {
                target[l * outputPlane] = low[l] + (bias?[firstChannel + l] ?? 0)
                target[(l + 8) * outputPlane] = high[l] + (bias?[firstChannel + l + 8] ?? 0)
            }
        }
        emit(0, a0, b0)
        emit(1, a1, b1)
        emit(2, a2, b2)
        emit(3, a3, b3)
        emit(4, a4, b4)
        emit(5, a5, b5)
    }

    /// Adds into `transposed` ([combination][out], from this block's first channel) the sums over
    /// `range` pixels of gradient[pixel][16 channels] x input at (combination, pixel), for 6
    /// combinations from `combination` (fewer at the end).
    private func weightTile(
        _ padded: UnsafePointer<Float>, _ gradient: UnsafePointer<Float>, _ combinations: UnsafeBufferPointer<Int>,
        combination: Int, _ pixels: UnsafeBufferPointer<Int>, range: Range<Int>,
        into transposed: UnsafeMutablePointer<Float>
    ) {
        let valid = min(Self.pixels, combinations.count - combination)
        let last = combinations.count - 1
        let c0 = combinations[combination], c1 = combinations[min(combination + 1, last)],
            c2 = combinations[min(combination + 2, last)]
        let c3 = combinations[min(combination + 3, last)], c4 = combinations[min(combination + 4, last)],
            c5 = combinations[min(combination + 5, last)]
        var a0 = SIMD8<Float>(), b0 = SIMD8<Float>(), a1 = SIMD8<Float>(), b1 = SIMD8<Float>()
        var a2 = SIMD8<Float>(), b2 = SIMD8<Float>(), a3 = SIMD8<Float>(), b3 = SIMD8<Float>()
        var a4 = SIMD8<Float>(), b4 = SIMD8<Float>(), a5 = SIMD8<Float>(), b5 = SIMD8<Float>()
        for p in range {
            let d = gradient + p * outChannels
            let low = load(d), high = load(d + 8)
            let x = padded + pixels[p]
            var v = SIMD8<Float>(repeating: x[c0])
            a0 = multiplyAdd(low, v, a0)
            b0 = multiplyAdd(high, v, b0)
            v = SIMD8<Float>(repeating: x[c1])
            a1 = multiplyAdd(low, v, a1)
            b1 = multiplyAdd(high, v, b1)
            v = SIMD8<Float>(repeating: x[c2])
            a2 = multiplyAdd(low, v, a2)
            b2 = multiplyAdd(high, v, b2)
            v = SIMD8<Float>(repeating: x[c3])
            a3 = multiplyAdd(low, v, a3)
            b3 = multiplyAdd(high, v, b3)
            v = SIMD8<Float>(repeating: x[c4])
            a4 = multiplyAdd(low, v, a4)
            b4 = multiplyAdd(high, v, b4)
            v = SIMD8<Float>(repeating: x[c5])
            a5 = multiplyAdd(low, v, a5)
            b5 = multiplyAdd(high, v, b5)
        }
        @inline(__always)
        func add(_ j: Int, _ low: SIMD8<Float>, _ high: SIMD8<Float>) {
            guard j < valid else { return }
            let target = UnsafeMutableRawPointer(transposed + (combination + j) * outChannels)
            target.storeBytes(of: target.loadUnaligned(as: SIMD8<Float>.self) + low, as: SIMD8<Float>.self)
            target.storeBytes(
                of: target.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self) + high, toByteOffset: 32,
                as: SIMD8<Float>.self)
        }
        add(0, a0, b0)
        add(1, a1, b1)
        add(2, a2, b2)
        add(3, a3, b3)
        add(4, a4, b4)
        add(5, a5, b5)
    }

    /// 16 input channels x the 6 output pixels from `start`, one tap: sums over the output
    /// channels, added at each pixel's tap position in the pixel-major `target`.
    private func inputGradientTile(
        _ gy: UnsafePointer<Float>, _ gradients: UnsafeBufferPointer<Int>, _ windows: UnsafeBufferPointer<Int>,
        start: Int,
        weights: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, tapOffset: Int
    ) {
        let valid = min(Self.pixels, windows.count - start)
        let last = windows.count - 1
        let g0 = gy + gradients[start], g1 = gy + gradients[min(start + 1, last)],
            g2 = gy + gradients[min(start + 2, last)]
        let g3 = gy + gradients[min(start + 3, last)], g4 = gy + gradients[min(start + 4, last)],
            g5 = gy + gradients[min(start + 5, last)]
        var a0 = SIMD8<Float>(), b0 = SIMD8<Float>(), a1 = SIMD8<Float>(), b1 = SIMD8<Float>()
        var a2 = SIMD8<Float>(), b2 = SIMD8<Float>(), a3 = SIMD8<Float>(), b3 = SIMD8<Float>()
        var a4 = SIMD8<Float>(), b4 = SIMD8<Float>(), a5 = SIMD8<Float>(), b5 = SIMD8<Float>()
        var w = weights
        var o = 0
        for _ in 0..<outChannels {
            let low = load(w), high = load(w + 8)
            w += Self.lanes
            var v = SIMD8<Float>(repeating: g0[o])
            a0 = multiplyAdd(low, v, a0)
            b0 = multiplyAdd(high, v, b0)
            v = SIMD8<Float>(repeating: g1[o])
            a1 = multiplyAdd(low, v, a1)
            b1 = multiplyAdd(high, v, b1)
            v = SIMD8<Float>(repeating: g2[o])
            a2 = multiplyAdd(low, v, a2)
            b2 = multiplyAdd(high, v, b2)
            v = SIMD8<Float>(repeating: g3[o])
            a3 = multiplyAdd(low, v, a3)
            b3 = multiplyAdd(high, v, b3)
            v = SIMD8<Float>(repeating: g4[o])
            a4 = multiplyAdd(low, v, a4)
            b4 = multiplyAdd(high, v, b4)
            v = SIMD8<Float>(repeating: g5[o])
            a5 = multiplyAdd(low, v, a5)
            b5 = multiplyAdd(high, v, b5)
            o += outputPlane
        }
        @inline(__always)
        func add(_ j: Int, _ low: SIMD8<Float>, _ high: SIMD8<Float>) {
            guard j < valid else { return }
            let pixel = UnsafeMutableRawPointer(target + (windows[start + j] + tapOffset) * inChannels)
            pixel.storeBytes(of: pixel.loadUnaligned(as: SIMD8<Float>.self) + low, as: SIMD8<Float>.self)
            pixel.storeBytes(
                of: pixel.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self) + high, toByteOffset: 32,
                as: SIMD8<Float>.self)
        }
        add(0, a0, b0)
        add(1, a1, b1)
        add(2, a2, b2)
        add(3, a3, b3)
        add(4, a4, b4)
        add(5, a5, b5)
    }
}
