import Tensors
import TestSupport
import XCTest

/// A direct seven-loop convolution, independent of im2col and GEMM.
func naiveConv2d(_ x: Tensor, _ w: Tensor, _ b: Tensor?, stride: (Int, Int), padding: (Int, Int), groups: Int)
    -> [Float]
{
    let n = x.shape[0], cin = x.shape[1], h = x.shape[2], width = x.shape[3]
    let cout = w.shape[0], kh = w.shape[2], kw = w.shape[3]
    let oh = (h + 2 * padding.0 - kh) / stride.0 + 1, ow = (width + 2 * padding.1 - kw) / stride.1 + 1
    let cinPerGroup = cin / groups, coutPerGroup = cout / groups
    var out: [Float] = []
    for image in 0..<n {
        for oc in 0..<cout {
            let group = oc / coutPerGroup
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var total = Double(b?.data[oc] ?? 0)
                    for icg in 0..<cinPerGroup {
                        let ic = group * cinPerGroup + icg
                        for ky in 0..<kh {
                            for kx in 0..<kw {
                                let iy = oy * stride.0 + ky - padding.0, ix = ox * stride.1 + kx - padding.1
                                if iy < 0 || iy >= h || ix < 0 || ix >= width { continue }
                                total +=
                                    Double(x.data[((image * cin + ic) * h + iy) * width + ix])
                                    * Double(w.data[((oc * cinPerGroup + icg) * kh + ky) * kw + kx])
                            }
                        }
                    }
                    out.append(Float(total))
                }
            }
        }
    }
    return out
}

final class ConvolutionTests: XCTestCase {
    struct Case {
        let input: [Int]
        let outChannels: Int
        let kernel: Int
        let stride: Int
        let padding: Int
        let groups: Int
        let bias: Bool
    }

    let cases: [Case] = [
        Case(input: [2, 3, 7, 5], outChannels: 4, kernel: 3, stride: 1, padding: 1, groups: 1, bias: true),
        Case(input: [2, 4, 9, 8], outChannels: 6, kernel: 3, stride: 2, padding: 1, groups: 2, bias: false),
        Case(input: [1, 3, 6, 7], outChannels: 2, kernel: 2, stride: 2, padding: 0, groups: 1, bias: true),
        Case(input: [2, 5, 5, 6], outChannels: 3, kernel: 1, stride: 1, padding: 0, groups: 1, bias: true),
        Case(input: [2, 4, 7, 7], outChannels: 8, kernel: 1, stride: 2, padding: 0, groups: 1, bias: false),
        // depthwise
        Case(input: [2, 4, 7, 6], outChannels: 4, kernel: 3, stride: 1, padding: 1, groups: 4, bias: true),
        // depthwise x2
        Case(input: [2, 3, 8, 7], outChannels: 6, kernel: 3, stride: 2, padding: 1, groups: 3, bias: false),
        // ConvNeXt's 7x7 depthwise, rows past one vector
        Case(input: [2, 3, 11, 13], outChannels: 3, kernel: 7, stride: 1, padding: 3, groups: 3, bias: true),
        // ... on planes smaller than the kernel (most taps see only padding), and with a multiplier
        Case(input: [3, 2, 2, 2], outChannels: 2, kernel: 7, stride: 1, padding: 3, groups: 2, bias: true),
        Case(input: [2, 3, 1, 1], outChannels: 3, kernel: 7, stride: 1, padding: 3, groups: 3, bias: false),
        Case(input: [2, 2, 5, 9], outChannels: 4, kernel: 3, stride: 1, padding: 1, groups: 2, bias: false),
        Case(input: [1, 2, 5, 5], outChannels: 3, kernel: 5, stride: 1, padding: 2, groups: 1, bias: true),
        // Several small images per GEMM (also with each of two threads taking a share).
        Case(input: [6, 4, 5, 6], outChannels: 6, kernel: 3, stride: 1, padding: 1, groups: 2, bias: true),
        Case(input: [5, 3, 9, 9], outChannels: 4, kernel: 3, stride: 2, padding: 1, groups: 1, bias: false),
        // a 2x2 wavelet band
        Case(input: [4, 3, 2, 2], outChannels: 5, kernel: 3, stride: 1, padding: 1, groups: 1, bias: true),
        // an 8x8 band, as DS2S's finest level
        Case(input: [3, 4, 8, 8], outChannels: 5, kernel: 3, stride: 1, padding: 1, groups: 1, bias: false),
        // 225 outputs, just under the 256 limit for several images per GEMM
        Case(input: [2, 2, 15, 15], outChannels: 3, kernel: 3, stride: 1, padding: 1, groups: 1, bias: true),
        // Large enough that the unfolded columns are processed in several row chunks.
        Case(input: [1, 40, 20, 20], outChannels: 3, kernel: 3, stride: 1, padding: 1, groups: 1, bias: true),
        Case(input: [1, 64, 41, 19], outChannels: 2, kernel: 3, stride: 2, padding: 1, groups: 1, bias: false),
    ]

    /// oneDNN's primitives and sfkd's own kernels (unfolding, the depthwise loop), each pinned,
    /// on one thread and with two threads each taking a share of the batch.
    func testForwardMatchesNaiveLoops() {
        let previous = Threads.count
        defer { Threads.configure(previous) }
        for kernel in [ConvolutionKernel.oneDNN, .unfold] {
            for threads in [1, 2] {
                Threads.configure(threads)
                ConvolutionKernel.pinned(kernel) { checkForward("\(kernel), \(threads) thread(s)") }
            }
        }
    }

    private func checkForward(_ label: String) {
        for (i, c) in cases.enumerated() {
            let x = randomTensor(c.input, seed: UInt64(i))
            let w = randomTensor([c.outChannels, c.input[1] / c.groups, c.kernel, c.kernel], seed: UInt64(i + 100))
            let b = c.bias ? randomTensor([c.outChannels], seed: UInt64(i + 200)) : nil
            let y = withNoGrad {
                conv2d(
                    x, weight: w, bias: b, stride: (c.stride, c.stride), padding: (c.padding, c.padding),
                    groups: c.groups)
            }
            let expected = naiveConv2d(
                x, w, b, stride: (c.stride, c.stride), padding: (c.padding, c.padding), groups: c.groups)
            XCTAssertLessThan(maxDifference(y, expected), 1e-4, "\(label) case \(i): \(c)")
        }
    }

    func testGradients() {
        let previous = Threads.count
        defer { Threads.configure(previous) }
        for (kernel, threads) in [(ConvolutionKernel.oneDNN, 1), (.oneDNN, 2), (.unfold, 1)] {
            Threads.configure(threads)
            ConvolutionKernel.pinned(kernel) { checkGradientCases() }
        }
    }

    private func checkGradientCases() {
        for (i, c) in cases.enumerated() {
            let x = randomTensor(c.input, seed: UInt64(i))
            let w = randomTensor([c.outChannels, c.input[1] / c.groups, c.kernel, c.kernel], seed: UInt64(i + 100))
            let b = c.bias ? randomTensor([c.outChannels], seed: UInt64(i + 200)) : nil
            checkGradients([x, w] + (b.map { [$0] } ?? [])) {
                conv2d(
                    x, weight: w, bias: b, stride: (c.stride, c.stride), padding: (c.padding, c.padding),
                    groups: c.groups)
            }
        }
    }

    /// Stride-1 3x3 shapes for the direct kernel: output channels in full blocks of 4 and not,
    /// rows that end mid-tile, paddings 0-2 (the input gradient then pads 2-0), one input channel.
    let directCases: [Case] = [
        Case(input: [2, 5, 16, 17], outChannels: 6, kernel: 3, stride: 1, padding: 1, groups: 1, bias: true),
        Case(input: [3, 4, 8, 8], outChannels: 8, kernel: 3, stride: 1, padding: 1, groups: 1, bias: false),
        Case(input: [1, 3, 9, 30], outChannels: 4, kernel: 3, stride: 1, padding: 0, groups: 1, bias: true),
        Case(input: [2, 2, 5, 7], outChannels: 5, kernel: 3, stride: 1, padding: 2, groups: 1, bias: true),
        Case(input: [1, 1, 3, 3], outChannels: 3, kernel: 3, stride: 1, padding: 1, groups: 1, bias: false),
    ]

    /// With `kernel` pinned, each case takes it, matches the naive loops and passes finite differences.
    private func checkPinned(_ kernel: ConvolutionKernel, _ cases: [Case], seed: UInt64) {
        for (i, c) in cases.enumerated() {
            let x = randomTensor(c.input, seed: seed + UInt64(i))
            let w = randomTensor([c.outChannels, c.input[1], c.kernel, c.kernel], seed: seed + 100 + UInt64(i))
            let b = c.bias ? randomTensor([c.outChannels], seed: seed + 200 + UInt64(i)) : nil
            let stride = (c.stride, c.stride), padding = (c.padding, c.padding)
            ConvolutionKernel.pinned(kernel) {
                XCTAssertEqual(
                    conv2dKernel(input: c.input, weight: w.shape, stride: stride, padding: padding), kernel, "case \(i)"
                )
                let y = withNoGrad { conv2d(x, weight: w, bias: b, stride: stride, padding: padding) }
                let expected = naiveConv2d(x, w, b, stride: stride, padding: padding, groups: 1)
                XCTAssertLessThan(maxDifference(y, expected), 1e-4, "case \(i): \(c)")
                checkGradients([x, w] + (b.map { [$0] } ?? [])) {
                    conv2d(x, weight: w, bias: b, stride: stride, padding: padding)
                }
            }
        }
    }

    func testOneDNNMatchesNaiveLoopsAndFiniteDifferences() {
        checkPinned(.oneDNN, directCases + channelLaneCases, seed: 900)
    }

    func testDirectKernelMatchesNaiveLoopsAndFiniteDifferences() {
        checkPinned(.direct, directCases, seed: 300)
    }

    /// Shapes for the channel-lane kernel: 16 and 32 output channels, strides 1 and 2, paddings
    /// 0-2, pixel tiles that run across images and end part-full, an input gradient that takes
    /// the same kernel (16 input channels), a 1x1 convolution.
    let channelLaneCases: [Case] = [
        Case(input: [2, 5, 6, 7], outChannels: 16, kernel: 3, stride: 1, padding: 1, groups: 1, bias: true),
        Case(input: [3, 4, 8, 8], outChannels: 32, kernel: 3, stride: 2, padding: 1, groups: 1, bias: false),
        Case(input: [4, 3, 2, 2], outChannels: 16, kernel: 3, stride: 1, padding: 1, groups: 1, bias: true),
        Case(input: [1, 2, 5, 5], outChannels: 16, kernel: 3, stride: 1, padding: 0, groups: 1, bias: false),
        Case(input: [2, 16, 5, 3], outChannels: 16, kernel: 3, stride: 1, padding: 2, groups: 1, bias: true),
        // a DS2S embedding
        Case(input: [3, 8, 5, 4], outChannels: 32, kernel: 1, stride: 1, padding: 0, groups: 1, bias: true),
        // Strided with 16 or 32 input channels: the input gradient in input-channel lanes.
        Case(input: [3, 16, 7, 6], outChannels: 16, kernel: 3, stride: 2, padding: 1, groups: 1, bias: false),
        Case(input: [2, 32, 5, 5], outChannels: 16, kernel: 3, stride: 2, padding: 0, groups: 1, bias: true),
        // a ResNet shortcut
        Case(input: [3, 16, 6, 7], outChannels: 32, kernel: 1, stride: 2, padding: 0, groups: 1, bias: false),
    ]

    func testChannelLaneKernelMatchesNaiveLoopsAndFiniteDifferences() {
        checkPinned(.channelLanes, channelLaneCases, seed: 600)
    }

    /// The automatic choice takes oneDNN where it has a convolution kernel, except the direct
    /// kernel on a narrow wide plane (release builds); sfkd's direct and channel-lane kernels and
    /// oneDNN agree with im2col + GEMM in values and gradients, on one thread and with two
    /// threads each taking a share of the batch.
    func testDirectKernelsAgreeWithUnfolding() {
        let direct: ConvolutionKernel = ConvolutionKernel.automaticPicksDirectKernels ? .direct : .oneDNN
        let shapes:
            [(input: [Int], outChannels: Int, stride: Int, kernel: ConvolutionKernel, automatic: ConvolutionKernel)] = [
                ([5, 16, 32, 32], 16, 1, .direct, direct), ([5, 32, 8, 8], 32, 1, .channelLanes, .oneDNN),
                ([5, 16, 9, 9], 32, 2, .channelLanes, .oneDNN), ([5, 32, 16, 16], 64, 2, .channelLanes, .oneDNN),
                ([5, 32, 16, 16], 64, 2, .oneDNN, .oneDNN), ([5, 8, 8, 8], 8, 1, .oneDNN, .oneDNN),
            ]
        // A depthwise 7x7 on a 2x2 plane: oneDNN would unfold it; sfkd's loop runs it.
        XCTAssertEqual(
            conv2dKernel(input: [5, 8, 2, 2], weight: [8, 1, 7, 7], padding: (3, 3), groups: 8), .unfold)
        let previous = Threads.count
        defer { Threads.configure(previous) }
        for (index, shape) in shapes.enumerated() {
            let weight = [shape.outChannels, shape.input[1], 3, 3]
            XCTAssertEqual(
                conv2dKernel(input: shape.input, weight: weight, stride: (shape.stride, shape.stride), padding: (1, 1)),
                shape.automatic, "\(shape.input)")
            let x = randomTensor(shape.input, seed: UInt64(7 + index)), w = randomTensor(weight, seed: 8),
                b = randomTensor([shape.outChannels], seed: 9)
            var seed: Tensor?
            func run(_ kernel: ConvolutionKernel) -> (y: [Float], gx: [Float], gw: [Float], gb: [Float]) {
                ConvolutionKernel.pinned(kernel) {
                    let xi = x.detached(), wi = w.detached(), bi = b.detached()
                    for t in [xi, wi, bi] { t.requiresGrad = true }
                    let y = conv2d(xi, weight: wi, bias: bi, stride: (shape.stride, shape.stride), padding: (1, 1))
                    if seed == nil { seed = randomTensor(y.shape, seed: 10) }
                    y.backward(seed: seed!)
                    return (y.array, xi.grad!.array, wi.grad!.array, bi.grad!.array)
                }
            }
            for threads in [1, 2] {
                Threads.configure(threads)
                let fast = run(shape.kernel), unfold = run(.unfold)
                for (name, a, e) in [
                    ("y", fast.y, unfold.y), ("gx", fast.gx, unfold.gx), ("gw", fast.gw, unfold.gw),
                    ("gb", fast.gb, unfold.gb),
                ] {
                    let scale = e.map { Swift.abs($0) }.max()!
                    let difference = zip(a, e).map { Swift.abs($0 - $1) }.max()!
                    XCTAssertLessThan(
                        difference, 1e-5 * max(1, scale),
                        "\(shape.kernel) \(shape.input): \(name), \(threads) thread(s)")
                }
            }
        }
    }
}
