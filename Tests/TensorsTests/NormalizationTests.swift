import Tensors
import TestSupport
import XCTest

final class NormalizationTests: XCTestCase {
    func testBatchNormTrainingForwardAndRunningStatistics() {
        let x = randomTensor([3, 2, 4, 5], seed: 1, range: -2...3)
        let w = randomTensor([2], seed: 2), b = randomTensor([2], seed: 3)
        let runningMean = Tensor(zeros: [2]), runningVariance = Tensor(repeating: 1, shape: [2])
        let y = withNoGrad {
            batchNorm(x, weight: w, bias: b, runningMean: runningMean, runningVariance: runningVariance, training: true)
        }
        for c in 0..<2 {
            var values: [Double] = []
            for n in 0..<3 { for i in 0..<20 { values.append(Double(x.data[(n * 2 + c) * 20 + i])) } }
            let mean = values.reduce(0, +) / 60
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 60
            for n in 0..<3 {
                for i in 0..<20 {
                    let index = (n * 2 + c) * 20 + i
                    let expected =
                        (Double(x.data[index]) - mean) / (variance + 1e-5).squareRoot() * Double(w.data[c])
                        + Double(b.data[c])
                    XCTAssertEqual(Double(y.data[index]), expected, accuracy: 1e-4)
                }
            }
            XCTAssertEqual(Double(runningMean.data[c]), 0.1 * mean, accuracy: 1e-5)
            XCTAssertEqual(Double(runningVariance.data[c]), 0.9 + 0.1 * variance * 60 / 59, accuracy: 1e-5)
        }
    }

    /// A channel whose mean is 200 times its spread, against a float64 reference of forward,
    /// input and weight gradients and running variance (E[x^2] - mean^2 in float32 sums lost
    /// three digits here).
    func testBatchNormIsAccurateWhenTheMeanDwarfsTheSpread() {
        let (batch, channels, plane) = (8, 2, 64)
        let x = randomTensor([batch, channels, 8, 8], seed: 21)
        for i in 0..<x.count { x.data[i] = 200 + x.data[i] }  // mean 200, spread ~0.58
        let w = randomTensor([channels], seed: 22, range: 0.5...1.5), b = randomTensor([channels], seed: 23)
        let runningMean = Tensor(zeros: [channels]), runningVariance = Tensor(repeating: 1, shape: [channels])
        let y = batchNorm(
            x, weight: w, bias: b, runningMean: runningMean, runningVariance: runningVariance, training: true)
        let g = randomTensor(y.shape, seed: 24, requiresGrad: false)
        y.backward(seed: g)
        let n = Double(batch * plane)
        for c in 0..<channels {
            var values: [Double] = [], grads: [Double] = []
            for k in 0..<batch {
                for i in 0..<plane {
                    values.append(Double(x.data[(k * channels + c) * plane + i]))
                    grads.append(Double(g.data[(k * channels + c) * plane + i]))
                }
            }
            let mean = values.reduce(0, +) / n
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / n
            let s = 1 / (variance + 1e-5).squareRoot()
            let xhat = values.map { ($0 - mean) * s }
            let weight = Double(w.data[c])
            let meanG = grads.reduce(0, +) / n
            let meanGX = zip(grads, xhat).map(*).reduce(0, +) / n
            var worstOutput = 0.0, worstInput = 0.0, scaleInput = 1e-12
            for (j, (k, i)) in (0..<batch).flatMap({ k in (0..<plane).map { (k, $0) } }).enumerated() {
                let index = (k * channels + c) * plane + i
                worstOutput = max(worstOutput, abs(Double(y.data[index]) - (xhat[j] * weight + Double(b.data[c]))))
                let expected = weight * s * (grads[j] - meanG - xhat[j] * meanGX)
                scaleInput = max(scaleInput, abs(expected))
                worstInput = max(worstInput, abs(Double(x.grad!.data[index]) - expected))
            }
            XCTAssertLessThan(worstOutput, 2e-4, "channel \(c): output")
            XCTAssertLessThan(worstInput / scaleInput, 2e-4, "channel \(c): input gradient")
            let weightGradient = zip(grads, xhat).map(*).reduce(0, +)
            XCTAssertEqual(
                Double(w.grad!.data[c]), weightGradient, accuracy: 2e-4 * max(1, abs(weightGradient)),
                "channel \(c): weight gradient")
            XCTAssertEqual(
                Double(runningVariance.data[c]), 0.9 + 0.1 * variance * n / (n - 1), accuracy: 1e-4 * variance,
                "channel \(c): running variance")
            XCTAssertEqual(Double(runningMean.data[c]), 0.1 * mean, accuracy: 1e-5 * mean, "channel \(c): running mean")
        }
    }

    func testBatchNormGradients() {
        let x = randomTensor([3, 2, 3, 4], seed: 4)
        let w = randomTensor([2], seed: 5), b = randomTensor([2], seed: 6)
        let mean = Tensor(zeros: [2]), variance = Tensor(repeating: 1, shape: [2])
        checkGradients([x, w, b]) {
            batchNorm(x, weight: w, bias: b, runningMean: mean, runningVariance: variance, training: true)
        }
        let x2 = randomTensor([6, 3], seed: 7)
        let mean3 = Tensor(zeros: [3]), variance3 = Tensor(repeating: 1, shape: [3])
        checkGradients([x2]) {
            batchNorm(x2, weight: nil, bias: nil, runningMean: mean3, runningVariance: variance3, training: true)
        }
        let runningMean = randomTensor([2], seed: 8, requiresGrad: false)
        let runningVariance = randomTensor([2], seed: 9, range: 0.5...2, requiresGrad: false)
        checkGradients([x, w, b]) {
            batchNorm(
                x, weight: w, bias: b, runningMean: runningMean, runningVariance: runningVariance, training: false)
        }
        let y = withNoGrad {
            batchNorm(
                x, weight: w, bias: b, runningMean: runningMean, runningVariance: runningVariance, training: false)
        }
        let expected =
            (x.data[13] - runningMean.data[1]) / (runningVariance.data[1] + 1e-5).squareRoot() * w.data[1] + b.data[1]
        XCTAssertEqual(y.data[13], expected, accuracy: 1e-5)
    }

    func testSynchronisedStatisticsReducerIsUsed() {
        // A reducer that doubles the sums acts like a second rank with identical data: the
        // output must equal the unsynchronised one, and the counts the reducer sees are right.
        let x = randomTensor([2, 3, 2, 2], seed: 10)
        var seenCount = 0.0
        let doubling: StatisticsReducer = { buffer in
            seenCount = buffer[buffer.count - 1]
            for i in buffer.indices { buffer[i] *= 2 }
        }
        let m1 = Tensor(zeros: [3]), v1 = Tensor(repeating: 1, shape: [3]), m2 = Tensor(zeros: [3]),
            v2 = Tensor(repeating: 1, shape: [3])
        let plain = withNoGrad {
            batchNorm(x, weight: nil, bias: nil, runningMean: m1, runningVariance: v1, training: true)
        }
        let synced = withNoGrad {
            batchNorm(
                x, weight: nil, bias: nil, runningMean: m2, runningVariance: v2, training: true, reducer: doubling)
        }
        XCTAssertEqual(seenCount, 8)
        XCTAssertLessThan(maxDifference(synced, plain.array), 1e-5)
        let w = randomTensor([3], seed: 11)
        checkGradients([x, w]) {
            batchNorm(x, weight: w, bias: nil, runningMean: m2, runningVariance: v2, training: true, reducer: doubling)
        }
    }

    func testChannelLayerNormEqualsLayerNormOverPermutedChannels() {
        let x = randomTensor([3, 5, 4, 3], seed: 31)
        let fused = withNoGrad { channelLayerNorm(x) }
        let reference = withNoGrad {
            layerNorm(x.permute([0, 2, 3, 1]), weight: nil, bias: nil).permute([0, 3, 1, 2])
        }
        XCTAssertLessThan(maxDifference(fused, reference.array), 1e-5)
        checkGradients([x]) { channelLayerNorm(x) }
        // Backward must not depend on buffers the forward let go of (they are reused).
        let seed = randomTensor(x.shape, seed: 32, requiresGrad: false)
        x.grad = nil
        Tape.current.reset()
        layerNorm(x.permute([0, 2, 3, 1]), weight: nil, bias: nil).permute([0, 3, 1, 2]).backward(seed: seed)
        let referenceGradient = x.grad!.array
        x.grad = nil
        Tape.current.reset()
        let y = channelLayerNorm(x)
        let reuse = (0..<8).map { _ in Tensor(Array(repeating: 1000, count: 36), shape: [3, 12]) }
        y.backward(seed: seed)
        XCTAssertLessThan(maxDifference(x.grad!, referenceGradient), 1e-5)
        XCTAssertEqual(reuse.count, 8)
        x.grad = nil
    }

    func testLayerNorm() {
        let x = randomTensor([2, 3, 6], seed: 12, range: -2...2)
        let w = randomTensor([6], seed: 13), b = randomTensor([6], seed: 14)
        checkGradients([x, w, b]) { layerNorm(x, weight: w, bias: b) }
        checkGradients([x]) { layerNorm(x, weight: nil, bias: nil) }
        let y = withNoGrad { layerNorm(x, weight: w, bias: b) }
        let row = (6..<12).map { Double(x.data[$0]) }
        let mean = row.reduce(0, +) / 6
        let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 6
        for i in 0..<6 {
            let expected = (row[i] - mean) / (variance + 1e-5).squareRoot() * Double(w.data[i]) + Double(b.data[i])
            XCTAssertEqual(Double(y.data[6 + i]), expected, accuracy: 1e-5)
        }
    }
}
