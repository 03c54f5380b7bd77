import Tensors
import TestSupport
import XCTest

/// A direct seven-loop convolution, independent of im2col and GEMM.
func naiveConv2d(_ x: Tensor, _ w: Tensor, _ b: Tensor?, stride: (Int, Int), padding: (Int, Int), groups: Int) -> [Float] {
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
                                total += Double(x.data[((image * cin + ic) * h + iy) * width + ix]) * Double(w.data[((oc * cinPerGroup + icg) * kh + ky) * kw + kx])
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
    struct Case { let input: [Int]; let outChannels: Int; let kernel: Int; let stride: Int; let padding: Int; let groups: Int; let bias: Bool }

    let cases: [Case] = [
        Case(input: [2, 3, 7, 5], outChannels: 4, kernel: 3, stride: 1, padding: 1, groups: 1, bias: true),
        Case(input: [2, 4, 9, 8], outChannels: 6, kernel: 3, stride: 2, padding: 1, groups: 2, bias: false),
        Case(input: [1, 3, 6, 7], outChannels: 2, kernel: 2, stride: 2, padding: 0, groups: 1, bias: true),
        Case(input: [2, 5, 5, 6], outChannels: 3, kernel: 1, stride: 1, padding: 0, groups: 1, bias: true),
        Case(input: [2, 4, 7, 7], outChannels: 8, kernel: 1, stride: 2, padding: 0, groups: 1, bias: false),
        Case(input: [2, 4, 7, 6], outChannels: 4, kernel: 3, stride: 1, padding: 1, groups: 4, bias: true),   // depthwise
        Case(input: [2, 3, 8, 7], outChannels: 6, kernel: 3, stride: 2, padding: 1, groups: 3, bias: false),  // depthwise x2
        Case(input: [2, 3, 11, 13], outChannels: 3, kernel: 7, stride: 1, padding: 3, groups: 3, bias: true), // ConvNeXt's 7x7 depthwise, rows past one vector
        Case(input: [1, 2, 5, 5], outChannels: 3, kernel: 5, stride: 1, padding: 2, groups: 1, bias: true),
        // Several small images per GEMM (also with each of two threads taking a share).
        Case(input: [6, 4, 5, 6], outChannels: 6, kernel: 3, stride: 1, padding: 1, groups: 2, bias: true),
        Case(input: [5, 3, 9, 9], outChannels: 4, kernel: 3, stride: 2, padding: 1, groups: 1, bias: false),
        Case(input: [4, 3, 2, 2], outChannels: 5, kernel: 3, stride: 1, padding: 1, groups: 1, bias: true),   // a 2x2 wavelet band
        Case(input: [3, 4, 8, 8], outChannels: 5, kernel: 3, stride: 1, padding: 1, groups: 1, bias: false),  // an 8x8 band, as DS2S's finest level
        Case(input: [2, 2, 15, 15], outChannels: 3, kernel: 3, stride: 1, padding: 1, groups: 1, bias: true), // 225 outputs, just under the 256 limit for several images per GEMM
        // Large enough that the unfolded columns are processed in several row chunks.
        Case(input: [1, 40, 20, 20], outChannels: 3, kernel: 3, stride: 1, padding: 1, groups: 1, bias: true),
        Case(input: [1, 64, 41, 19], outChannels: 2, kernel: 3, stride: 2, padding: 1, groups: 1, bias: false),
    ]

    func testForwardMatchesNaiveLoops() {
        for (i, c) in cases.enumerated() {
            let x = randomTensor(c.input, seed: UInt64(i))
            let w = randomTensor([c.outChannels, c.input[1] / c.groups, c.kernel, c.kernel], seed: UInt64(i + 100))
            let b = c.bias ? randomTensor([c.outChannels], seed: UInt64(i + 200)) : nil
            let y = withNoGrad { conv2d(x, weight: w, bias: b, stride: (c.stride, c.stride), padding: (c.padding, c.padding), groups: c.groups) }
            let expected = naiveConv2d(x, w, b, stride: (c.stride, c.stride), padding: (c.padding, c.padding), groups: c.groups)
            XCTAssertLessThan(maxDifference(y, expected), 1e-4, "case \(i): \(c)")
        }
    }

    func testGradients() {
        for (i, c) in cases.enumerated() {
            let x = randomTensor(c.input, seed: UInt64(i))
            let w = randomTensor([c.outChannels, c.input[1] / c.groups, c.kernel, c.kernel], seed: UInt64(i + 100))
            let b = c.bias ? randomTensor([c.outChannels], seed: UInt64(i + 200)) : nil
            checkGradients([x, w] + (b.map { [$0] } ?? [])) {
                conv2d(x, weight: w, bias: b, stride: (c.stride, c.stride), padding: (c.padding, c.padding), groups: c.groups)
            }
        }
    }
}
