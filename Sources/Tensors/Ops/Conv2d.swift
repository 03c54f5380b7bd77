/// 2-D convolution (cross-correlation, as PyTorch) on NCHW input with a
/// (outChannels, inChannels/groups, kh, kw) weight. Where oneDNN has a convolution kernel for
/// the shape it runs there (`ConvolutionKernel.automaticPicksOneDNN`); otherwise, and with
/// another kernel pinned: depthwise convolutions are a direct loop;
/// stride-1 3x3 convolutions on wide planes a direct kernel with outputs in the vector lanes
/// (`DirectConvolution`), other 3x3 convolutions and 1x1 convolutions on small planes, with
/// output channels in multiples of 16, one with channels in the lanes (`ChannelLaneConvolution`);
/// strided 1x1 convolutions are the stride-1 convolution of the pixels they read; the rest
/// unfold: on small output planes several images side by side into one GEMM, otherwise 1x1
/// convolutions are one GEMM per image and the rest im2col + GEMM.
/// The unfolded columns are recomputed in backward rather than kept, to save memory.
public func conv2d(
    _ input: Tensor, weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
    groups: Int = 1
) -> Tensor {
    ensure(input.rank == 4 && weight.rank == 4, "conv2d: input \(input.shape) and weight \(weight.shape) must be 4-D")
    let batch = input.shape[0], inChannels = input.shape[1]
    let outChannels = weight.shape[0]
    ensure(
        groups >= 1 && inChannels % groups == 0 && outChannels % groups == 0 && weight.shape[1] == inChannels / groups,
        "conv2d: input \(input.shape) and weight \(weight.shape) do not match with groups \(groups)")
    if let bias { ensure(bias.shape == [outChannels], "conv2d: bias \(bias.shape) for weight \(weight.shape)") }
    let g = ConvGeometry(
        inputHeight: input.shape[2], inputWidth: input.shape[3],
        kernelHeight: weight.shape[2], kernelWidth: weight.shape[3],
        strideHeight: stride.0, strideWidth: stride.1, paddingHeight: padding.0, paddingWidth: padding.1)
    ensure(
        stride.0 >= 1 && stride.1 >= 1 && padding.0 >= 0 && padding.1 >= 0 && g.outputHeight >= 1 && g.outputWidth >= 1,
        "conv2d: input \(input.shape), weight \(weight.shape), stride \(stride), padding \(padding) gives no output")
    let plan = ConvPlan(batch: batch, inChannels: inChannels, outChannels: outChannels, groups: groups, geometry: g)
    let out = Tensor(uninitializedShape: [batch, outChannels, g.outputHeight, g.outputWidth])
    FLOPCounter.add(
        batch * outChannels * g.outputHeight * g.outputWidth * (inChannels / groups) * weight.shape[2] * weight.shape[3]
    )
    let precision = Autocast.precision
    plan.forward(input.data, weight.data, bias?.data, out.data, precision: precision)
    let inputs = [input, weight] + (bias.map { [$0] } ?? [])
    guard Tape.current.recording(inputs, family: .convolution) else { return out }
    // The input at the convolution's precision: at bfloat16 the backward reads it only rounded.
    let (inputNode, savedInput) = (input.node, SavedActivation(input, precision: precision))
    Tape.current.record(out, inputs: inputs, family: .convolution) { gradOut in
        // The stride-1 path overwrites the input gradient; the others accumulate into zeros.
        let shape = inputNode.shape
        let gx =
            inputNode.requiresGrad
            ? (plan.inputGradientIsConvolution ? Tensor(uninitializedShape: shape) : Tensor(zeros: shape))
            : nil
        let gw = weight.requiresGrad ? Tensor(zeros: weight.shape) : nil
        savedInput.withValues { input in
            plan.backward(input.data, weight.data, gradOut.data, gx?.data, gw?.data, precision: precision)
        }
        if let gx { accumulateGradient(inputNode, gx) }
        if let gw { accumulateGradient(weight, gw) }
        if let bias, bias.requiresGrad {
            let gb = Tensor(zeros: bias.shape)
            let plane = g.outputHeight * g.outputWidth
            for n in 0..<batch {
                for c in 0..<outChannels {
                    gb.data[c] += sum(gradOut.data + (n * outChannels + c) * plane, count: plane)
                }
            }
            accumulateGradient(bias, gb)
        }
    }
    return out
}

/// Which kernel runs a 3x3 convolution (or a 1x1 on a small plane). `automatic` picks per
/// shape; tests and `bench ops` pin one to compare them (a pinned kernel that does not apply to
/// a shape falls back to unfolding).
public enum ConvolutionKernel: String, Sendable, CaseIterable {
    case automatic, unfold, direct
    case channelLanes = "channel-lanes"
    case oneDNN = "onednn"

    /// `SFKD_CONV=unfold|direct|channel-lanes|onednn` in the environment pins one for a run.
    nonisolated(unsafe) public static var choice = fromEnvironment("SFKD_CONV") ?? .automatic

    /// Runs `body` with `kernel` pinned, then goes back to the previous choice.
    public static func pinned<T>(_ kernel: ConvolutionKernel, _ body: () throws -> T) rethrows -> T {
        let previous = choice
        choice = kernel
        defer { choice = previous }
        return try body()
    }

    /// Whether `automatic` may pick the direct kernels. Not in debug builds: unoptimised SIMD
    /// code runs two orders of magnitude slower than OpenBLAS there (a debug `sfkd info` took
    /// minutes). The kernels' own tests pin them and also run in release builds.
    #if DEBUG
        public static let automaticPicksDirectKernels = false
    #else
        public static let automaticPicksDirectKernels = true
    #endif

    /// Whether `automatic` runs `plan` on oneDNN: wherever oneDNN has a convolution kernel for
    /// the shape, except where sfkd's direct kernel applies to a narrow layer (16 channels or
    /// fewer, resnet8's first stage). Measured with
    /// `bench ops` (Zen 4, AVX-512, forward + backward): oneDNN 0.9-1.5x the best of sfkd's
    /// kernels from 32 channels up, its depthwise 7x7 forward 4x sfkd's loop; the direct kernel
    /// 1.05x oneDNN on 64x16x32x32 on one thread.
    static func automaticPicksOneDNN(_ plan: ConvPlan) -> Bool {
        if plan.direct != nil && plan.inChannels <= 16 && plan.outChannels <= 16 { return false }
        return plan.oneDNN(images: min(plan.batch, parallelChunking(plan.batch).perChunk))?.hasConvolutionKernel
            ?? false
    }
}

/// The kernel `conv2d` runs for these shapes under the current `ConvolutionKernel.choice`
/// (`unfold` also names the depthwise loop).
public func conv2dKernel(
    input: [Int], weight: [Int], stride: (Int, Int) = (1, 1), padding: (Int, Int), groups: Int = 1
) -> ConvolutionKernel {
    let g = ConvGeometry(
        inputHeight: input[2], inputWidth: input[3], kernelHeight: weight[2], kernelWidth: weight[3],
        strideHeight: stride.0, strideWidth: stride.1, paddingHeight: padding.0, paddingWidth: padding.1)
    let outer = ConvPlan(batch: input[0], inChannels: input[1], outChannels: weight[0], groups: groups, geometry: g)
    if outer.usesOneDNN && outer.oneDNN(images: input[0]) != nil { return .oneDNN }
    let plan = outer.subsampled ?? outer
    return plan.direct != nil ? .direct : plan.channelLanes != nil ? .channelLanes : .unfold
}

struct ConvPlan {
    let batch, inChannels, outChannels, groups: Int
    let geometry: ConvGeometry
    /// The arithmetic of the oneDNN primitives it runs (`bfloat16` only on `nativeBFloat16`).
    var precision: Precision = .float32

    /// The direct kernel where it applies and is chosen.
    var direct: DirectConvolution? {
        guard DirectConvolution.applies(to: geometry, groups: groups) else { return nil }
        switch ConvolutionKernel.choice {
        case .unfold, .channelLanes, .oneDNN: return nil
        case .direct: break
        case .automatic:
            if !ConvolutionKernel.automaticPicksDirectKernels { return nil }
            // Measured with `bench ops` (Zen 3): 1.3-1.9x im2col + GEMM from 16-wide outputs up;
            // on 8x8 planes the dropped row ends cost a third more work, and the channel-lane
            // kernel (or GEMM) wins.
            if geometry.outputWidth < 16 { return nil }
        }
        return DirectConvolution(inChannels: inChannels, outChannels: outChannels, geometry: geometry)
    }

    /// A strided 1x1 convolution (a ResNet shortcut) reads every stride-th pixel only: it runs as
    /// the stride-1 1x1 convolution of those pixels, gathered once, and backward scatters their
    /// gradient back (unfolding ran it as a general convolution, one small GEMM per image).
    var subsampled: ConvPlan? {
        let g = geometry
        guard
            g.kernelHeight == 1 && g.kernelWidth == 1 && g.paddingHeight == 0 && g.paddingWidth == 0 && !isPointwise
                && !isDepthwise
        else { return nil }
        return ConvPlan(
            batch: batch, inChannels: inChannels, outChannels: outChannels, groups: groups,
            geometry: ConvGeometry(
                inputHeight: g.outputHeight, inputWidth: g.outputWidth, kernelHeight: 1, kernelWidth: 1,
                strideHeight: 1, strideWidth: 1, paddingHeight: 0, paddingWidth: 0))
    }

    /// Calls `body(input index, gathered index)` for every pixel a strided 1x1 convolution reads,
    /// gathered as (batch, inChannels, outH, outW).
    @inline(__always)
    private func forEachSubsampledPixel(_ body: (Int, Int) -> Void) {
        let g = geometry
        parallelFor(batch * inChannels, grain: 16) { planes in
            for plane in planes {
                for oy in 0..<g.outputHeight {
                    let row = plane * inPlane + oy * g.strideHeight * g.inputWidth,
                        out = plane * outPlane + oy * g.outputWidth
                    for ox in 0..<g.outputWidth { body(row + ox * g.strideWidth, out + ox) }
                }
            }
        }
    }

    /// The channel-lane kernel where it applies and is chosen.
    var channelLanes: ChannelLaneConvolution? {
        // 1x1 on small planes too: DS2S's embeddings and projections of wavelet bands, whose
        // per-image GEMMs are a few dozen columns wide (16% less time than GEMM in its step).
        guard ChannelLaneConvolution.applies(outChannels: outChannels, groups: groups), !isDepthwise,
            geometry.kernelHeight == 3 && geometry.kernelWidth == 3 || isPointwise && outPlane < 256
        else { return nil }
        switch ConvolutionKernel.choice {
        case .unfold, .direct, .oneDNN: return nil
        case .channelLanes: break
        case .automatic: if direct != nil || !ConvolutionKernel.automaticPicksDirectKernels { return nil }
        }
        return ChannelLaneConvolution(inChannels: inChannels, outChannels: outChannels, geometry: geometry)
    }

    var inPlane: Int { geometry.inputHeight * geometry.inputWidth }
    var outPlane: Int { geometry.outputHeight * geometry.outputWidth }
    var inPerGroup: Int { inChannels / groups }
    var outPerGroup: Int { outChannels / groups }
    var kernelArea: Int { geometry.kernelHeight * geometry.kernelWidth }
    /// Rows of the unfolded matrix of one group.
    var columnsRows: Int { inPerGroup * kernelArea }

    var isPointwise: Bool {
        geometry.kernelHeight == 1 && geometry.kernelWidth == 1 && geometry.strideHeight == 1
            && geometry.strideWidth == 1
            && geometry.paddingHeight == 0 && geometry.paddingWidth == 0
    }
    var isDepthwise: Bool { groups == inChannels && groups > 1 }

    /// Images are independent: with several threads each takes a share of the batch and runs
    /// its GEMMs on one core (small GEMMs scale poorly inside OpenBLAS, and im2col would stay
    /// serial). With fewer images than threads, OpenBLAS threads each GEMM instead.
    private func overImages(_ body: (_ chunk: Int, _ images: Range<Int>) -> Void) {
        if Threads.count > 1 && batch >= Threads.count {
            withSingleThreadedBLAS { parallelChunks(batch, body) }
        } else {
            body(0, 0..<batch)
        }
    }

    private var imageChunks: Int {
        Threads.count > 1 && batch >= Threads.count ? parallelChunking(batch).chunks : 1
    }

    func forward(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>?,
        _ y: UnsafeMutablePointer<Float>
    ) {
        if usesOneDNN && forwardOnOneDNN(x, w, b, y) { return }
        if isDepthwise {
            parallelFor(batch * outChannels) { range in
                for index in range {
                    depthwiseForward(x, w, b, y, image: index / outChannels, channel: index % outChannels)
                }
            }
            return
        }
        if let inner = subsampled {
            let gathered = Tensor(uninitializedShape: [batch * inChannels * outPlane])
            let pg = gathered.data
            forEachSubsampledPixel { pg[$1] = x[$0] }
            inner.forward(pg, w, b, y)
            return
        }
        if let direct {
            let packed = Tensor(uninitializedShape: [direct.packedCount])
            direct.pack(w, into: packed.data)
            overImages { _, images in
                let padded = Tensor(uninitializedShape: [direct.paddedCount])
                let result = Tensor(uninitializedShape: [outChannels * direct.span])
                for n in images {
                    direct.forward(
                        x + n * inChannels * inPlane, packed: packed.data, bias: b, y + n * outChannels * outPlane,
                        padded: padded.data, result: result.data)
                }
            }
            return
        }
        if let lanes = channelLanes {
            let packed = Tensor(uninitializedShape: [lanes.packedCount])
            lanes.pack(w, into: packed.data)
            overImages { _, images in
                let padded = Tensor(uninitializedShape: [
                    lanes.imagesPerGroup(images.count) * inChannels * lanes.paddedPlane
                ])
                lanes.forward(
                    x + images.lowerBound * inChannels * inPlane, packed: packed.data, bias: b,
                    y + images.lowerBound * outChannels * outPlane, images: images.count, padded: padded.data)
            }
            return
        }
        overImages { _, images in
            if imagesPerGEMM > 1 {
                forwardSmallPlanes(x, w, b, y, images: images)
                return
            }
            let columns =
                isPointwise ? nil : Tensor(uninitializedShape: [columnsRows, rowsPerChunk * geometry.outputWidth])
            for n in images {
                let xn = x + n * inChannels * inPlane
                let yn = y + n * outChannels * outPlane
                for group in 0..<groups {
                    let xg = xn + group * inPerGroup * inPlane
                    let yg = yn + group * outPerGroup * outPlane
                    let wg = w + group * outPerGroup * columnsRows
                    if let b {
                        for c in 0..<outPerGroup {
                            (yg + c * outPlane).update(repeating: b[group * outPerGroup + c], count: outPlane)
                        }
                    }
                    let beta: Float = b == nil ? 0 : 1
                    guard let columns else {
                        gemm(
                            transposeA: false, transposeB: false, m: outPerGroup, n: outPlane, k: columnsRows,
                            a: wg, lda: columnsRows, b: xg, ldb: outPlane, beta: beta, c: yg, ldc: outPlane)
                        continue
                    }
                    for rows in rowChunks {
                        let offset = rows.lowerBound * geometry.outputWidth, width = rows.count * geometry.outputWidth
                        im2col(xg, channels: inPerGroup, geometry: geometry, rows: rows, into: columns.data)
                        gemm(
                            transposeA: false, transposeB: false, m: outPerGroup, n: width, k: columnsRows,
                            a: wg, lda: columnsRows, b: columns.data, ldb: width, beta: beta, c: yg + offset,
                            ldc: outPlane)
                    }
                }
            }
        }
    }

    /// Images unfolded side by side into one GEMM. Small output planes (the last stages, patch
    /// embeddings, wavelet bands) make GEMMs too narrow to run well one image at a time; several
    /// images share one call, as long as their columns still fit the L2 budget.
    var imagesPerGEMM: Int {
        guard outPlane < 256 else { return 1 }
        return max(1, min(batch, columnBudget / max(1, columnsRows * outPlane)))
    }

    var columnBudget: Int { 96 * 1024 }  // Floats: 384 KiB, well inside a 1-2 MiB L2 with room for GEMM packing

    /// Forward for `imagesPerGEMM` > 1: unfold a run of images side by side, one GEMM per group,
    /// then scatter the (out, images x plane) result into NCHW.
    private func forwardSmallPlanes(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>?,
        _ y: UnsafeMutablePointer<Float>, images: Range<Int>
    ) {
        let perGEMM = imagesPerGEMM
        let columns = Tensor(uninitializedShape: [columnsRows, perGEMM * outPlane])
        let product = Tensor(uninitializedShape: [outPerGroup, perGEMM * outPlane])
        let gather = PlaneGather(geometry: geometry), scratch = Tensor(uninitializedShape: [gather.scratchCount])
        for first in stride(from: images.lowerBound, to: images.upperBound, by: perGEMM) {
            let count = min(perGEMM, images.upperBound - first)
            let width = count * outPlane
            for group in 0..<groups {
                for i in 0..<count {
                    let xg = x + (first + i) * inChannels * inPlane + group * inPerGroup * inPlane
                    gather.unfold(
                        xg, channels: inPerGroup, rowStride: width, into: columns.data + i * outPlane,
                        scratch: scratch.data)
                }
                gemm(
                    transposeA: false, transposeB: false, m: outPerGroup, n: width, k: columnsRows,
                    a: w + group * outPerGroup * columnsRows, lda: columnsRows, b: columns.data, ldb: width,
                    c: product.data, ldc: width)
                for i in 0..<count {
                    for c in 0..<outPerGroup {
                        let channel = group * outPerGroup + c
                        let target = y + ((first + i) * outChannels + channel) * outPlane
                        let source = product.data + c * width + i * outPlane
                        let shift = b?[channel] ?? 0
                        for k in 0..<outPlane { target[k] = source[k] + shift }
                    }
                }
            }
        }
    }

    /// Weight gradient for `imagesPerGEMM` > 1: output gradients gathered to (out, images x plane),
    /// inputs unfolded side by side, one GEMM per group adding into `gw`.
    private func weightGradientSmallPlanes(
        _ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, into gw: UnsafeMutablePointer<Float>, images: Range<Int>
    ) {
        let perGEMM = imagesPerGEMM
        let columns = Tensor(uninitializedShape: [columnsRows, perGEMM * outPlane])
        let gathered = Tensor(uninitializedShape: [outPerGroup, perGEMM * outPlane])
        let gather = PlaneGather(geometry: geometry), scratch = Tensor(uninitializedShape: [gather.scratchCount])
        for first in stride(from: images.lowerBound, to: images.upperBound, by: perGEMM) {
            let count = min(perGEMM, images.upperBound - first)
            let width = count * outPlane
            for group in 0..<groups {
                for i in 0..<count {
                    let xg = x + (first + i) * inChannels * inPlane + group * inPerGroup * inPlane
                    gather.unfold(
                        xg, channels: inPerGroup, rowStride: width, into: columns.data + i * outPlane,
                        scratch: scratch.data)
                    for c in 0..<outPerGroup {
                        (gathered.data + c * width + i * outPlane).update(
                            from: gy + ((first + i) * outChannels + group * outPerGroup + c) * outPlane, count: outPlane
                        )
                    }
                }
                gemm(
                    transposeA: false, transposeB: true, m: outPerGroup, n: columnsRows, k: width,
                    a: gathered.data, lda: width, b: columns.data, ldb: width, beta: 1,
                    c: gw + group * outPerGroup * columnsRows, ldc: columnsRows)
            }
        }
    }

    /// Output rows per unfolded chunk, sized so the chunk stays in the L2 cache between im2col
    /// writing it and the GEMM reading it (a whole image's columns often do not fit), and
    /// balanced so no chunk is a sliver.
    var rowsPerChunk: Int {
        let target = columnBudget
        let height = geometry.outputHeight
        let fitting = max(1, min(height, target / max(1, columnsRows * geometry.outputWidth)))
        let chunks = (height + fitting - 1) / fitting
        return (height + chunks - 1) / chunks
    }

    var rowChunks: [Range<Int>] {
        stride(from: 0, to: geometry.outputHeight, by: rowsPerChunk).map {
            $0..<min(geometry.outputHeight, $0 + rowsPerChunk)
        }
    }

    /// With stride 1 the input gradient is itself a convolution: of the output gradient with the
    /// flipped, transposed kernel and padding k - 1 - p. That runs on the forward path (im2col
    /// copy + a GEMM with the wide K = out*kh*kw), faster than a GEMM with K = out followed by a
    /// col2im scatter.
    var inputGradientIsConvolution: Bool {
        geometry.strideHeight == 1 && geometry.strideWidth == 1 && !isPointwise && !isDepthwise
            && geometry.paddingHeight < geometry.kernelHeight && geometry.paddingWidth < geometry.kernelWidth
    }

    /// Writes dL/dx = conv(gy, flip(W)^T) into gx (stride 1 only).
    func inputGradientByConvolution(
        _ w: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, into gx: UnsafeMutablePointer<Float>
    ) {
        let kh = geometry.kernelHeight, kw = geometry.kernelWidth
        let flipped = Tensor(uninitializedShape: [inChannels, outPerGroup, kh, kw])
        let pf = flipped.data
        for group in 0..<groups {
            for o in 0..<outPerGroup {
                for i in 0..<inPerGroup {
                    let source = w + ((group * outPerGroup + o) * inPerGroup + i) * kernelArea
                    let target = pf + ((group * inPerGroup + i) * outPerGroup + o) * kernelArea
                    for k in 0..<kernelArea { target[k] = source[kernelArea - 1 - k] }
                }
            }
        }
        let transposed = ConvPlan(
            batch: batch, inChannels: outChannels, outChannels: inChannels, groups: groups,
            geometry: ConvGeometry(
                inputHeight: geometry.outputHeight, inputWidth: geometry.outputWidth,
                kernelHeight: kh, kernelWidth: kw, strideHeight: 1, strideWidth: 1,
                paddingHeight: kh - 1 - geometry.paddingHeight, paddingWidth: kw - 1 - geometry.paddingWidth))
        transposed.forward(gy, flipped.data, nil, gx)
    }

    /// Adds dL/dw into gw, and dL/dx into gx, except where `inputGradientIsConvolution`, which
    /// overwrites gx (either may be nil). Each image chunk sums its weight gradient separately;
    /// the partial sums are then added in chunk order, so results do not depend on timing.
    func backward(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ gy: UnsafePointer<Float>,
        _ gx: UnsafeMutablePointer<Float>?, _ gw: UnsafeMutablePointer<Float>?
    ) {
        if usesOneDNN && backwardOnOneDNN(x, w, gy, gx, gw) { return }
        if isDepthwise {
            depthwiseBackward(x, w, gy, gx, gw)
            return
        }
        if let inner = subsampled {
            let gathered = Tensor(uninitializedShape: [batch * inChannels * outPlane])
            let pg = gathered.data
            forEachSubsampledPixel { pg[$1] = x[$0] }
            let gatheredGradient = gx == nil ? nil : Tensor(zeros: [batch * inChannels * outPlane])
            inner.backward(pg, w, gy, gatheredGradient?.data, gw)
            if let gx, let gradient = gatheredGradient?.data { forEachSubsampledPixel { gx[$0] += gradient[$1] } }
            return
        }
        var gx = gx
        if let target = gx, inputGradientIsConvolution {
            inputGradientByConvolution(w, gy, into: target)
            gx = nil
        }
        if let target = gx, let lanes = channelLanes, geometry.kernelHeight == 3,
            inChannels % ChannelLaneConvolution.lanes == 0
        {
            // Strided: the transposed convolution with input channels in the lanes, instead of a
            // GEMM to columns and a col2im scatter per image.
            let packed = Tensor(uninitializedShape: [lanes.packedCount])
            lanes.packForInputGradient(w, into: packed.data)
            overImages { _, images in
                let scratch = Tensor(uninitializedShape: [
                    lanes.imagesPerGroup(images.count) * lanes.paddedPlane * inChannels
                ])
                lanes.inputGradient(
                    gy + images.lowerBound * outChannels * outPlane, packed: packed.data,
                    into: target + images.lowerBound * inChannels * inPlane, images: images.count, scratch: scratch.data
                )
            }
            gx = nil
        }
        let weightCount = outChannels * columnsRows
        let chunks = imageChunks
        let partials = gw == nil || chunks == 1 ? nil : Tensor(zeros: [chunks, weightCount])
        overImages { chunk, images in
            var gwChunk = partials.map { $0.data + chunk * weightCount } ?? gw
            if let target = gwChunk, let direct {
                let padded = Tensor(uninitializedShape: [direct.paddedCount])
                let gradient = Tensor(uninitializedShape: [outChannels * direct.span])
                for n in images {
                    direct.weightGradient(
                        x + n * inChannels * inPlane, gy + n * outChannels * outPlane, into: target,
                        padded: padded.data, gradient: gradient.data)
                }
                gwChunk = nil
            } else if let target = gwChunk, let lanes = channelLanes {
                let perGroup = lanes.imagesPerGroup(images.count)
                let padded = Tensor(uninitializedShape: [perGroup * inChannels * lanes.paddedPlane])
                let gradient = Tensor(uninitializedShape: [perGroup * outPlane * outChannels])
                let transposed = Tensor(zeros: [weightCount])
                lanes.weightGradient(
                    x + images.lowerBound * inChannels * inPlane, gy + images.lowerBound * outChannels * outPlane,
                    into: transposed.data, images: images.count, padded: padded.data, gradient: gradient.data)
                lanes.addTransposed(transposed.data, into: target)
                gwChunk = nil
            } else if let target = gwChunk, imagesPerGEMM > 1 {
                weightGradientSmallPlanes(x, gy, into: target, images: images)
                gwChunk = nil
            }
            let columns =
                gwChunk == nil || isPointwise
                ? nil : Tensor(uninitializedShape: [columnsRows, rowsPerChunk * geometry.outputWidth])
            let columnGrad = gx == nil || isPointwise ? nil : Tensor(uninitializedShape: [columnsRows, outPlane])
            if gwChunk == nil && gx == nil { return }
            for n in images {
                let xn = x + n * inChannels * inPlane
                let gyn = gy + n * outChannels * outPlane
                for group in 0..<groups {
                    let xg = xn + group * inPerGroup * inPlane
                    let gyg = gyn + group * outPerGroup * outPlane
                    let wg = w + group * outPerGroup * columnsRows
                    if let gwChunk {
                        let gwg = gwChunk + group * outPerGroup * columnsRows
                        if let columns {
                            for rows in rowChunks {
                                let offset = rows.lowerBound * geometry.outputWidth,
                                    width = rows.count * geometry.outputWidth
                                im2col(xg, channels: inPerGroup, geometry: geometry, rows: rows, into: columns.data)
                                gemm(
                                    transposeA: false, transposeB: true, m: outPerGroup, n: columnsRows, k: width,
                                    a: gyg + offset, lda: outPlane, b: columns.data, ldb: width, beta: 1, c: gwg,
                                    ldc: columnsRows)
                            }
                        } else {
                            gemm(
                                transposeA: false, transposeB: true, m: outPerGroup, n: columnsRows, k: outPlane,
                                a: gyg, lda: outPlane, b: xg, ldb: outPlane, beta: 1, c: gwg, ldc: columnsRows)
                        }
                    }
                    if let gx {
                        let gxg = gx + n * inChannels * inPlane + group * inPerGroup * inPlane
                        if let columnGrad {
                            // Strided convolutions: GEMM to column gradients, then fold them back.
                            gemm(
                                transposeA: true, transposeB: false, m: columnsRows, n: outPlane, k: outPerGroup,
                                a: wg, lda: columnsRows, b: gyg, ldb: outPlane, c: columnGrad.data, ldc: outPlane)
                            col2imAdd(columnGrad.data, channels: inPerGroup, geometry: geometry, into: gxg)
                        } else {
                            gemm(
                                transposeA: true, transposeB: false, m: columnsRows, n: outPlane, k: outPerGroup,
                                a: wg, lda: columnsRows, b: gyg, ldb: outPlane, beta: 1, c: gxg, ldc: outPlane)
                        }
                    }
                }
            }
        }
        if let gw, let partials {
            for chunk in 0..<chunks { addInPlace(gw, partials.data + chunk * weightCount, count: weightCount) }
        }
    }

    // Depthwise: output channel c reads input channel c / multiplier.

    private func depthwiseForward(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>?,
        _ y: UnsafeMutablePointer<Float>, image n: Int, channel c: Int
    ) {
        let g = geometry
        let multiplier = outChannels / inChannels
        let xc = x + (n * inChannels + c / multiplier) * inPlane
        let yc = y + (n * outChannels + c) * outPlane
        let wc = w + c * kernelArea
        yc.update(repeating: b?[c] ?? 0, count: outPlane)
        for ky in g.validKernelRows {
            for kx in 0..<g.kernelWidth {
                let weight = wc[ky * g.kernelWidth + kx]
                let (xStart, xEnd) = g.validColumns(kx: kx)
                if xEnd <= xStart { continue }
                for oy in 0..<g.outputHeight {
                    let iy = oy * g.strideHeight + ky - g.paddingHeight
                    if iy < 0 || iy >= g.inputHeight { continue }
                    let src = xc + iy * g.inputWidth + kx - g.paddingWidth
                    let dst = yc + oy * g.outputWidth
                    if g.strideWidth == 1 {
                        for ox in xStart..<xEnd { dst[ox] += weight * src[ox] }
                    } else {
                        let s = g.strideWidth
                        for ox in xStart..<xEnd { dst[ox] += weight * src[ox * s] }
                    }
                }
            }
        }
    }

    func depthwiseBackward(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ gy: UnsafePointer<Float>,
        _ gx: UnsafeMutablePointer<Float>?, _ gw: UnsafeMutablePointer<Float>?
    ) {
        let g = geometry
        let multiplier = outChannels / inChannels
        if let gw, DepthwiseWeightGradient.applies(to: g) {
            DepthwiseWeightGradient(geometry: g, channels: inChannels, multiplier: multiplier)
                .accumulate(x, gy, batch: batch, into: gw)
            if gx != nil { depthwiseBackward(x, w, gy, gx, nil) }
            return
        }
        guard gx != nil || gw != nil else { return }
        // Parallel over input channels: each owns its gx planes and its multiplier's weights.
        parallelFor(inChannels) { channels in
            for ic in channels {
                for m in 0..<multiplier {
                    let c = ic * multiplier + m
                    let wc = w + c * kernelArea
                    for n in 0..<batch {
                        let xc = x + (n * inChannels + ic) * inPlane
                        let gyc = gy + (n * outChannels + c) * outPlane
                        let gxc = gx.map { $0 + (n * inChannels + ic) * inPlane }
                        for ky in g.validKernelRows {
                            for kx in 0..<g.kernelWidth {
                                let k = ky * g.kernelWidth + kx
                                let weight = wc[k]
                                let (xStart, xEnd) = g.validColumns(kx: kx)
                                if xEnd <= xStart { continue }
                                var weightGrad: Float = 0
                                for oy in 0..<g.outputHeight {
                                    let iy = oy * g.strideHeight + ky - g.paddingHeight
                                    if iy < 0 || iy >= g.inputHeight { continue }
                                    let offset = iy * g.inputWidth + kx - g.paddingWidth
                                    let src = xc + offset
                                    let grad = gyc + oy * g.outputWidth
                                    let s = g.strideWidth
                                    guard xEnd > xStart else { continue }
                                    if s == 1 {
                                        // Contiguous rows: a vector dot product and a vector axpy
                                        // (a scalar float sum does not vectorise).
                                        weightGrad += dot(grad + xStart, src + xStart, count: xEnd - xStart)
                                        if let gxc {
                                            addScaledInPlace(
                                                gxc + offset + xStart, grad + xStart, alpha: weight,
                                                count: xEnd - xStart)
                                        }
                                        continue
                                    }
                                    for ox in xStart..<xEnd { weightGrad += grad[ox] * src[ox * s] }
                                    if let gxc {
                                        let dst = gxc + offset
                                        for ox in xStart..<xEnd { dst[ox * s] += weight * grad[ox] }
                                    }
                                }
                                gw?[c * kernelArea + k] += weightGrad
                            }
                        }
                    }
                }
            }
        }
    }
}
