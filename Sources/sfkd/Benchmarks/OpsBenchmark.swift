import ArgumentParser
import Foundation
import Layers
import Tensors

/// `sfkd bench ops`: each kernel's speed next to the baseline it should be judged against,
/// measured in the same process: the machine's best dense float32 rate (the faster of OpenBLAS's
/// and oneDNN's sgemm) for matrix products and convolutions, memory-copy GB/s for elementwise
/// kernels.
struct OpsBenchmark {
    enum Part: String, CaseIterable, ExpressibleByArgument {
        case gemm, conv, attention, elementwise, pool
    }

    let repeats: Int
    var parts: Set<Part> = Set(Part.allCases)

    /// A 3x3 convolution with the kernel sfkd picks for its shape; the other kernels that apply
    /// to the shape are timed in the same rounds for comparison (forward+backward GFLOP/s).
    struct Convolution: Encodable {
        let shape: String, kernel: String
        let forwardGFLOPS: Double, forwardBackwardGFLOPS: Double, denseGFLOPS: Double,
            forwardBackwardVersusDense: Double
        let alternatives: [String: Double]

        enum CodingKeys: String, CodingKey {
            case shape, kernel, alternatives
            case forwardGFLOPS = "forward_gflops", forwardBackwardGFLOPS = "forward_backward_gflops"
            case denseGFLOPS = "dense_gflops", forwardBackwardVersusDense = "forward_backward_vs_dense"
        }
    }

    /// A matrix product of a model's step on each library, timed in turn; `chosen` is what
    /// `automatic` runs.
    struct Product: Encodable {
        let shape: String, chosen: String
        let openblasGFLOPS: Double, onednnGFLOPS: Double, chosenVersusDense: Double
        enum CodingKeys: String, CodingKey {
            case shape, chosen
            case openblasGFLOPS = "openblas_gflops", onednnGFLOPS = "onednn_gflops", chosenVersusDense =
                "chosen_vs_dense"
        }
    }

    struct KernelTiming: Encodable {
        let forwardMilliseconds: Double, forwardBackwardMilliseconds: Double, forwardBackwardGFLOPS: Double
        /// Forward + backward milliseconds of the other kernels, timed in the same rounds.
        var alternatives: [String: Double]? = nil

        enum CodingKeys: String, CodingKey {
            case forwardMilliseconds = "forward_ms", forwardBackwardMilliseconds = "forward_backward_ms",
                forwardBackwardGFLOPS = "forward_backward_gflops", alternatives = "alternatives_forward_backward_ms"
        }
    }

    /// Each kernel's GB/s and its ratio to a copy timed alternately with it.
    struct Elementwise: Encodable {
        struct Kernel: Encodable {
            let name: String, gbps: Double, versusCopy: Double
            enum CodingKeys: String, CodingKey { case name, gbps, versusCopy = "vs_copy" }
        }
        let copyGBPS: Double
        let kernels: [Kernel]
        enum CodingKeys: String, CodingKey { case copyGBPS = "copy_gbps", kernels }
    }

    struct PoolAllocations: Encodable {
        let firstStep: Int, laterSteps: Int, laterStepCount: Int
        enum CodingKeys: String, CodingKey {
            case firstStep = "first_step_allocations", laterSteps = "later_step_allocations", laterStepCount =
                "later_steps"
        }
    }

    struct Result: Encodable {
        var denseRate = DenseRate(openblasGFLOPS: 0, onednnGFLOPS: 0)
        var products: [Product]?
        var convolutions: [Convolution]?
        var attention: KernelTiming?
        var narrowHeadAttention: KernelTiming?
        var depthwise7x7: KernelTiming?
        var windowAttention: KernelTiming?
        var elementwise: Elementwise?
        var pool: PoolAllocations?
        var openblasCore = BLASCore.coreName
        var onednnInstructionSet = OneDNN.instructionSet
        var threads = Threads.count

        enum CodingKeys: String, CodingKey {
            case attention, elementwise, pool, threads
            case denseRate = "dense_rate", products = "gemm", onednnInstructionSet = "onednn_isa", convolutions =
                "conv2d_3x3", narrowHeadAttention =
                "narrow_head_attention", openblasCore = "openblas_core"
            case depthwise7x7 = "depthwise_conv2d_7x7", windowAttention = "window_attention"
        }
    }

    func run(progress: (String) -> Void) -> Result {
        var results = Result()
        let gemm = SquareGEMM(size: 1024)
        let dense = DenseRate(measuring: gemm, repeats: repeats)
        results.denseRate = dense
        progress(
            "best dense float32 rate: \(dense.summary); OpenBLAS core \(BLASCore.coreName), oneDNN \(OneDNN.version) on \(OneDNN.instructionSet)"
        )
        if parts.contains(.gemm) {
            // Products of the models' steps: resnet18's stages at 32x32 (im2col), ViT and
            // ConvNeXt linear layers, a classifier, and a narrow one of DS2S.
            let shapes = [
                (4096, 384, 384), (12544, 64, 576), (1568, 192, 1728), (4096, 128, 128), (256, 64, 288),
                (64, 1000, 512), (1024, 32, 32),
            ]
            results.products = shapes.map { m, n, k in
                let product = matrixProduct(m: m, n: n, k: k, dense: dense)
                progress(
                    "sgemm \(product.shape): OpenBLAS \(formatted(product.openblasGFLOPS)) GFLOP/s, oneDNN \(formatted(product.onednnGFLOPS)) GFLOP/s; automatic runs \(product.chosen) = \(formatted(100 * product.chosenVersusDense, 0))% of the best dense rate"
                )
                return product
            }
        }

        if parts.contains(.conv) {
            var convolutions: [Convolution] = []
            for (channels, size) in [(16, 32), (32, 16), (64, 8), (32, 8), (32, 4)] {
                let c = conv3x3(batch: 64, channels: channels, size: size, baseline: gemm)
                convolutions.append(c)
                let others = c.alternatives.sorted { $0.key < $1.key }.map { "\($0.key) \(formatted($0.value))" }
                let alternatives = others.isEmpty ? "" : "; other kernels \(others.joined(separator: ", ")) GFLOP/s"
                progress(
                    "conv3x3 \(c.shape) \(c.kernel): forward \(formatted(c.forwardGFLOPS)) GFLOP/s, forward+backward \(formatted(c.forwardBackwardGFLOPS)) GFLOP/s = \(formatted(100 * c.forwardBackwardVersusDense, 0))% of the best dense rate (\(formatted(c.denseGFLOPS)) GFLOP/s)\(alternatives), timed alternately"
                )
            }
            results.convolutions = convolutions
            let depthwise = depthwise7x7(batch: 16, channels: 96, size: 56)
            results.depthwise7x7 = depthwise
            progress(
                "depthwise conv 7x7 16x96x56x56 (convnext_tiny's first stage at 224): forward \(formatted(depthwise.forwardMilliseconds, 2)) ms, forward+backward \(formatted(depthwise.forwardBackwardMilliseconds, 2)) ms (\(formatted(depthwise.forwardBackwardGFLOPS)) GFLOP/s); sfkd's loop \(formatted(depthwise.alternatives?["sfkd loop"] ?? 0, 2)) ms, oneDNN \(formatted(depthwise.alternatives?["onednn"] ?? 0, 2)) ms, timed alternately"
            )
        }
        if parts.contains(.attention) {
            let attention = attentionBlock(batch: 64, tokens: 65, width: 128, heads: 4)
            results.attention = attention
            progress(
                "attention block 64x65x128, 4 heads: forward \(formatted(attention.forwardMilliseconds, 2)) ms, forward+backward \(formatted(attention.forwardBackwardMilliseconds, 2)) ms (\(formatted(attention.forwardBackwardGFLOPS)) GFLOP/s)"
            )
            let narrow = narrowHeadAttention(batch: 64, tokens: 256, width: 32, heads: 4)
            results.narrowHeadAttention = narrow
            let windows = windowAttention(images: 8, grid: 56, window: 7, width: 96, heads: 3)
            results.windowAttention = windows
            progress(
                "window attention 8 images x 64 windows x 49 tokens, 3 heads of 32, bias + shifted mask (swin_tiny's first stage at 224): forward \(formatted(windows.forwardMilliseconds, 2)) ms, forward+backward \(formatted(windows.forwardBackwardMilliseconds, 2)) ms (\(formatted(windows.forwardBackwardGFLOPS)) GFLOP/s)"
            )
            progress(
                "narrow-head attention 64x256x32, 4 heads of 8 (DS2S's interaction block): forward \(formatted(narrow.forwardMilliseconds, 2)) ms, forward+backward \(formatted(narrow.forwardBackwardMilliseconds, 2)) ms (\(formatted(narrow.forwardBackwardGFLOPS)) GFLOP/s)"
            )
        }
        if parts.contains(.elementwise) {
            // 48 MB per array, beyond any cache; a multiple of 96 for the LayerNorm rows
            let memory = elementwise(count: 96 << 17)
            results.elementwise = memory
            progress("memory copy: \(formatted(memory.copyGBPS)) GB/s")
            for kernel in memory.kernels {
                progress(
                    "  \(kernel.name): \(formatted(kernel.gbps)) GB/s = \(formatted(100 * kernel.versusCopy, 0))% of the copy timed alternately"
                )
            }
        }
        if parts.contains(.pool) {
            let allocations = poolAllocationsPerStep()
            results.pool = allocations
            progress(
                "pool: \(allocations.firstStep) fresh buffers in the first step, \(allocations.laterSteps) in the \(allocations.laterStepCount) steps after"
            )
        }
        return results
    }

    private func randomTensor(_ shape: [Int], _ generator: inout RandomGenerator, requiresGrad: Bool = false) -> Tensor
    {
        let t = Tensor(uninitializedShape: shape)
        for i in 0..<t.count { t.data[i] = generator.nextUniform() - 0.5 }
        t.requiresGrad = requiresGrad
        return t
    }

    private func conv3x3(batch: Int, channels: Int, size: Int, baseline: SquareGEMM) -> Convolution {
        var generator = RandomGenerator(seed: 1)
        let x = randomTensor([batch, channels, size, size], &generator, requiresGrad: true)
        let w = randomTensor([channels, channels, 3, 3], &generator, requiresGrad: true)
        let flops = 2 * Double(batch * channels * size * size * channels * 9)
        let kernel = conv2dKernel(input: x.shape, weight: w.shape, padding: (1, 1))
        func step(_ choice: ConvolutionKernel) {
            ConvolutionKernel.pinned(choice) {
                let y = conv2d(x, weight: w, padding: (1, 1))
                y.backward(seed: y.detached())
                x.zeroGrad()
                w.zeroGrad()
            }
        }
        let forward = medianSeconds(repeats: repeats) {
            withNoGrad { _ = conv2d(x, weight: w, padding: (1, 1)) }
        }
        var bodies: [() -> Void] = [{ baseline.run(on: .openBLAS) }, { baseline.run(on: .oneDNN) }, { step(kernel) }]
        let others = [ConvolutionKernel.unfold, .direct, .channelLanes, .oneDNN].filter { other in
            other != kernel
                && ConvolutionKernel.pinned(other) {
                    conv2dKernel(input: x.shape, weight: w.shape, padding: (1, 1)) == other
                }
        }
        for other in others { bodies.append { step(other) } }
        let seconds = alternatingMedianSeconds(repeats: repeats, bodies)
        let gemmRate = baseline.flops / min(seconds[0], seconds[1]) * 1e-9
        let rate = 3 * flops / seconds[2] * 1e-9
        return Convolution(
            shape: "\(batch)x\(channels)x\(size)x\(size)", kernel: kernel.rawValue,
            forwardGFLOPS: flops / forward * 1e-9,
            forwardBackwardGFLOPS: rate, denseGFLOPS: gemmRate, forwardBackwardVersusDense: rate / gemmRate,
            alternatives: Dictionary(
                uniqueKeysWithValues: zip(others.map(\.rawValue), seconds.dropFirst(3).map { 3 * flops / $0 * 1e-9 })))
    }

    private func matrixProduct(m: Int, n: Int, k: Int, dense: DenseRate) -> Product {
        var generator = RandomGenerator(seed: 3)
        let a = randomTensor([m, k], &generator), b = randomTensor([k, n], &generator)
        let c = Tensor(zeros: [m, n])
        func product(_ kernel: GEMMKernel) {
            GEMMKernel.pinned(kernel) {
                gemm(
                    transposeA: false, transposeB: false, m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: n,
                    c: c.data, ldc: n)
            }
        }
        let seconds = alternatingMedianSeconds(repeats: repeats, [{ product(.openBLAS) }, { product(.oneDNN) }])
        let flops = 2 * Double(m * n * k)
        let chosen = GEMMKernel.automaticChoice
        return Product(
            shape: "\(m)x\(n)x\(k)", chosen: chosen.rawValue, openblasGFLOPS: flops / seconds[0] * 1e-9,
            onednnGFLOPS: flops / seconds[1] * 1e-9,
            chosenVersusDense: flops / seconds[chosen == .oneDNN ? 1 : 0] * 1e-9 / dense.best)
    }

    private func attentionBlock(batch: Int, tokens: Int, width: Int, heads: Int) -> KernelTiming {
        var generator = RandomGenerator(seed: 2)
        let attention = MultiHeadAttention(dimensions: width, heads: heads, generator: &generator)
        let x = randomTensor([batch, tokens, width], &generator, requiresGrad: true)
        let forward = medianSeconds(repeats: repeats) { withNoGrad { _ = attention(x) } }
        let both = medianSeconds(repeats: repeats) {
            let y = attention(x)
            y.backward(seed: y.detached())
            attention.zeroGrad()
            x.zeroGrad()
        }
        // qkv and proj projections plus the two attention products, times 3 for backward.
        let projections = 2.0 * Double(batch * tokens) * Double(width * width) * 4
        let products = 2.0 * 2 * Double(batch * tokens * tokens * width)
        return KernelTiming(
            forwardMilliseconds: forward * 1e3, forwardBackwardMilliseconds: both * 1e3,
            forwardBackwardGFLOPS: 3 * (projections + products) / both * 1e-9)
    }

    /// The attention kernel alone (no projections) on packed qkv: softmax(Q K^T / sqrt(d)) V.
    private func narrowHeadAttention(batch: Int, tokens: Int, width: Int, heads: Int) -> KernelTiming {
        var generator = RandomGenerator(seed: 4)
        let qkv = randomTensor([batch, tokens, 3 * width], &generator, requiresGrad: true)
        let forward = medianSeconds(repeats: repeats) { withNoGrad { _ = packedSelfAttention(qkv, heads: heads) } }
        let both = medianSeconds(repeats: repeats) {
            let y = packedSelfAttention(qkv, heads: heads)
            y.backward(seed: y.detached())
            qkv.zeroGrad()
        }
        // Forward: Q K^T and P V; backward: dP, dV, dQ and dK, each 2 * B * N * N * width flops.
        let product = 2.0 * Double(batch * tokens * tokens * width)
        return KernelTiming(
            forwardMilliseconds: forward * 1e3, forwardBackwardMilliseconds: both * 1e3,
            forwardBackwardGFLOPS: 6 * product / both * 1e-9)
    }

    /// ConvNeXt's depthwise convolution: 7x7, padding 3, one filter per channel.
    private func depthwise7x7(batch: Int, channels: Int, size: Int) -> KernelTiming {
        var generator = RandomGenerator(seed: 5)
        let x = randomTensor([batch, channels, size, size], &generator, requiresGrad: true)
        let w = randomTensor([channels, 1, 7, 7], &generator, requiresGrad: true)
        let forward = medianSeconds(repeats: repeats) {
            withNoGrad { _ = conv2d(x, weight: w, padding: (3, 3), groups: channels) }
        }
        func step(_ kernel: ConvolutionKernel) {
            ConvolutionKernel.pinned(kernel) {
                let y = conv2d(x, weight: w, padding: (3, 3), groups: channels)
                y.backward(seed: y.detached())
                x.zeroGrad()
                w.zeroGrad()
            }
        }
        // The automatic choice, then sfkd's loop and oneDNN (its weight gradient is sfkd's).
        let seconds = alternatingMedianSeconds(
            repeats: repeats, [{ step(.automatic) }, { step(.unfold) }, { step(.oneDNN) }])
        // Forward, input gradient and weight gradient: 2 * 49 flops per output element each.
        let flops = 2.0 * 49 * Double(batch * channels * size * size)
        return KernelTiming(
            forwardMilliseconds: forward * 1e3, forwardBackwardMilliseconds: seconds[0] * 1e3,
            forwardBackwardGFLOPS: 3 * flops / seconds[0] * 1e-9,
            alternatives: ["sfkd loop": seconds[1] * 1e3, "onednn": seconds[2] * 1e3])
    }

    /// Swin's shifted-window attention kernel (no projections): every image's windows with a
    /// per-head bias and the shifted-window mask added to the scores.
    private func windowAttention(images: Int, grid: Int, window: Int, width: Int, heads: Int) -> KernelTiming {
        var generator = RandomGenerator(seed: 6)
        let windows = (grid / window) * (grid / window), n = window * window
        let qkv = randomTensor([images * windows, n, 3 * width], &generator, requiresGrad: true)
        let bias = randomTensor([heads, n, n], &generator, requiresGrad: true)
        let mask = Tensor(zeros: [windows, n, n])
        for i in 0..<mask.count where (i / n) % 3 != (i % n) % 3 { mask.data[i] = -100 }
        let forward = medianSeconds(repeats: repeats) {
            withNoGrad { _ = packedSelfAttention(qkv, heads: heads, bias: bias, mask: mask) }
        }
        let both = medianSeconds(repeats: repeats) {
            let y = packedSelfAttention(qkv, heads: heads, bias: bias, mask: mask)
            y.backward(seed: y.detached())
            qkv.zeroGrad()
            bias.zeroGrad()
        }
        let product = 2.0 * Double(images * windows * n * n * width)
        return KernelTiming(
            forwardMilliseconds: forward * 1e3, forwardBackwardMilliseconds: both * 1e3,
            forwardBackwardGFLOPS: 6 * product / both * 1e-9)
    }

    private func elementwise(count: Int) -> Elementwise {
        var generator = RandomGenerator(seed: 3)
        let a = randomTensor([count], &generator), b = randomTensor([count], &generator)
        let bytes = Double(count * MemoryLayout<Float>.stride)
        var results: [Elementwise.Kernel] = []
        let destination = Tensor(uninitializedShape: [count])
        let channelsLast = a.reshape([count / 96, 96]), gamma = randomTensor([96], &generator),
            beta = randomTensor([96], &generator)
        let copy = { destination.data.update(from: a.data, count: count) }
        // Each kernel is timed alternately with the copy; a copy moves 2 arrays (read + write),
        // a binary op 3, a unary op 2.
        let kernels: [(String, Double, () -> Void)] = [
            ("add", 3, { _ = a + b }), ("mul", 3, { _ = a * b }), ("relu", 2, { _ = relu(a) }),
            ("scale", 2, { _ = a * 0.5 }), ("gelu", 2, { _ = gelu(a) }),
            // ConvNeXt's and Swin's LayerNorm over 96 channels last, with affine.
            (
                "layer_norm_96_channels_last", 2,
                { _ = layerNorm(channelsLast, weight: gamma, bias: beta, epsilon: 1e-6) }
            ),
        ]
        var copyRates: [Double] = []
        withNoGrad {
            for (name, arrays, kernel) in kernels {
                let (copySeconds, kernelSeconds) = pairedMedianSeconds(
                    repeats: repeats, baseline: copy, candidate: kernel)
                let copyRate = 2 * bytes / copySeconds * 1e-9, rate = arrays * bytes / kernelSeconds * 1e-9
                copyRates.append(copyRate)
                results.append(Elementwise.Kernel(name: name, gbps: rate, versusCopy: rate / copyRate))
            }
        }
        return Elementwise(copyGBPS: copyRates.sorted()[copyRates.count / 2], kernels: results)
    }

    /// A small conv + norm + attention + classifier step repeated: after the first step every
    /// buffer should come from the pool.
    private func poolAllocationsPerStep() -> PoolAllocations {
        var generator = RandomGenerator(seed: 4)
        let conv = Conv2d(inputChannels: 3, outputChannels: 16, kernelSize: 3, padding: 1, generator: &generator)
        let norm = BatchNorm2d(channels: 16)
        let attention = MultiHeadAttention(dimensions: 16, heads: 2, generator: &generator)
        let head = Linear(inputDimensions: 16, outputDimensions: 10, generator: &generator)
        let parameters = conv.parameters() + norm.parameters() + attention.parameters() + head.parameters()
        let optimizer = SGD(
            groups: [ParameterGroup(parameters: parameters, weightDecay: 5e-4)], learningRate: 0.01, momentum: 0.9)
        let x = randomTensor([8, 3, 16, 16], &generator)
        let labels = (0..<8).map { $0 % 10 }
        func step() {
            let features = maxPool2d(relu(norm(conv(x))), kernel: (4, 4))  // (8, 16, 4, 4)
            let tokens = features.flatten(from: 2).transposed(1, 2)  // (8, 16, 16)
            let pooled = attention(tokens).mean(axes: [1])
            let loss = crossEntropy(head(pooled), labels: labels, labelSmoothing: 0.1)
            optimizer.zeroGrad()
            loss.backward()
            optimizer.step()
        }
        let before = BufferPool.shared.stats.freshAllocations
        step()
        let afterFirst = BufferPool.shared.stats.freshAllocations
        let laterSteps = 10
        for _ in 0..<laterSteps { step() }
        let afterAll = BufferPool.shared.stats.freshAllocations
        return PoolAllocations(
            firstStep: afterFirst - before, laterSteps: afterAll - afterFirst, laterStepCount: laterSteps)
    }
}
