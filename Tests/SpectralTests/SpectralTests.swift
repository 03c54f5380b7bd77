import Foundation
import Spectral
import Tensors
import TestSupport
import XCTest

final class HaarDWTTests: XCTestCase {
    func testPerfectReconstructionAndEnergyForOddAndEvenSizes() {
        for shape in [[2, 3, 8, 8], [1, 2, 7, 5], [2, 1, 9, 4], [1, 1, 1, 3]] {
            let x = randomTensor(shape, seed: 1, requiresGrad: false)
            let levels = feasibleDWTLevels(height: shape[2], width: shape[3], requested: 3)
            let bands = withNoGrad { haarDWT(x, levels: levels) }
            let back = withNoGrad { haarIDWT(bands) }
            XCTAssertEqual(back.shape, x.shape)
            for i in 0..<x.count { XCTAssertEqual(back.data[i], x.data[i], accuracy: 1e-5, "\(shape)") }
            // Orthonormal: zero padding adds no energy, so the bands hold exactly the input's.
            var bandEnergy = bands.approximation.array.reduce(0.0) { $0 + Double($1 * $1) }
            for (lh, hl, hh) in bands.details {
                for b in [lh, hl, hh] { bandEnergy += b.array.reduce(0.0) { $0 + Double($1 * $1) } }
            }
            let energy = x.array.reduce(0.0) { $0 + Double($1 * $1) }
            XCTAssertEqual(bandEnergy, energy, accuracy: 1e-4 * energy, "\(shape)")
        }
    }

    func testOneLevelMatchesTheDefinition() {
        let x = Tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], shape: [1, 1, 3, 3])
        let packed = withNoGrad { haarDWTLevel(x) }
        XCTAssertEqual(packed.shape, [4, 1, 1, 2, 2])
        // Blocks (a, b, c, d): (1, 2, 4, 5), (3, 0, 6, 0), (7, 8, 0, 0), (9, 0, 0, 0), zero-padded on the right and bottom.
        XCTAssertEqual(packed.array, [6, 4.5, 7.5, 4.5, -3, -1.5, 7.5, 4.5, -1, 4.5, -0.5, 4.5, 0, -1.5, -0.5, 4.5])
    }

    func testLevelsShrinkToFit() {
        XCTAssertEqual(feasibleDWTLevels(height: 8, width: 8, requested: 2), 2)
        XCTAssertEqual(feasibleDWTLevels(height: 4, width: 4, requested: 5), 2)
        XCTAssertEqual(feasibleDWTLevels(height: 7, width: 7, requested: 5), 3)
        XCTAssertEqual(feasibleDWTLevels(height: 1, width: 1, requested: 2), 0)
    }

    func testGradients() {
        let x = randomTensor([2, 2, 5, 6], seed: 2)
        checkGradients([x]) { haarDWTLevel(x) }
        let bands = randomTensor([4, 2, 2, 3, 3], seed: 3)
        checkGradients([bands]) { haarIDWTLevel(bands, height: 5, width: 6) }
        checkGradients([x]) {
            let b = haarDWT(x, levels: 2)
            return concat([b.approximation.flatten(), b.details[1].0.flatten(), b.details[0].2.flatten()], axis: 1)
        }
        let y = randomTensor([1, 2, 7, 5], seed: 4)
        checkGradients([y]) {
            var b = haarDWT(y, levels: 2)
            b.details[0].1 = b.details[0].1 * 2
            return haarIDWT(b)
        }
    }
}

final class FrequencyLossTests: XCTestCase {
    /// Full-spectrum orthonormal DFT of one plane by the definition.
    func naiveDFT(_ x: [Float], _ h: Int, _ w: Int) -> [(Double, Double)] {
        var out: [(Double, Double)] = []
        for u in 0..<h {
            for v in 0..<w {
                var re = 0.0, im = 0.0
                for y in 0..<h {
                    for xx in 0..<w {
                        let angle = -2 * Double.pi * (Double(u * y) / Double(h) + Double(v * xx) / Double(w))
                        re += Double(x[y * w + xx]) * cos(angle)
                        im += Double(x[y * w + xx]) * sin(angle)
                    }
                }
                let n = Double(h * w).squareRoot()
                out.append((re / n, im / n))
            }
        }
        return out
    }

    func testRealFFTMatchesANaiveDFT() {
        for (h, w) in [(4, 6), (5, 7), (3, 4)] {
            let x = randomTensor([2, h, w], seed: 5, requiresGrad: false)
            let fft = RealFFT2D.plan(height: h, width: w, count: 2)
            let spectrum = Tensor(uninitializedShape: [2, h, fft.spectrumWidth, 2])
            let input = x.copy()
            fft.forward(input.data, spectrum.data)
            for p in 0..<2 {
                let reference = naiveDFT(Array(x.array[(p * h * w)..<((p + 1) * h * w)]), h, w)
                let n = Double(h * w).squareRoot()
                for u in 0..<h {
                    for v in 0..<fft.spectrumWidth {
                        let k = ((p * h + u) * fft.spectrumWidth + v) * 2
                        XCTAssertEqual(Double(spectrum.data[k]) / n, reference[u * w + v].0, accuracy: 1e-5)
                        XCTAssertEqual(Double(spectrum.data[k + 1]) / n, reference[u * w + v].1, accuracy: 1e-5)
                    }
                }
            }
            // The inverse of the forward is count H W times the input (FFTW does not normalise).
            let back = Tensor(uninitializedShape: [2, h, w])
            fft.inverse(spectrum.data, back.data)
            for i in 0..<x.count { XCTAssertEqual(back.data[i] / Float(h * w), x.data[i], accuracy: 1e-5) }
        }
    }

    /// The loss by its full-spectrum definition, with a naive DFT; focal weights computed from
    /// (s, t) unless `frozenFrom` gives the point to compute them at.
    func fullSpectrumLoss(_ s: Tensor, _ t: Tensor, rho: Float, alpha: Float, frozenFrom: (Tensor, Tensor)? = nil)
        -> Double
    {
        let (b, c, h, w) = (s.shape[0], s.shape[1], s.shape[2], s.shape[3])
        let mask = gaussianFrequencyMask(height: h, width: w, rho: rho).map(Double.init)
        var total = 0.0
        for p in 0..<(b * c) {
            let d = (0..<(h * w)).map { s.data[p * h * w + $0] - t.data[p * h * w + $0] }
            let spectrum = naiveDFT(d, h, w)
            let magnitudes = spectrum.map { ($0.0 * $0.0 + $0.1 * $0.1).squareRoot() }
            let (fs, ft) = frozenFrom ?? (s, t)
            let frozen = naiveDFT((0..<(h * w)).map { fs.data[p * h * w + $0] - ft.data[p * h * w + $0] }, h, w)
                .map { ($0.0 * $0.0 + $0.1 * $0.1).squareRoot() }
            let largest = frozen.max()!
            for k in 0..<(h * w) {
                let focal = alpha > 0 ? pow(frozen[k] / largest, Double(alpha)) : 1
                total += mask[k] * focal * magnitudes[k] * magnitudes[k]
            }
        }
        return total / (Double(b * c) * mask.reduce(0, +))
    }

    func testHalfSpectrumLossEqualsTheFullSpectrumFormula() {
        for (h, w) in [(4, 4), (5, 6), (6, 7)] {
            for alpha: Float in [0, 1] {
                let s = randomTensor([2, 3, h, w], seed: 6, requiresGrad: false),
                    t = randomTensor([2, 3, h, w], seed: 7, requiresGrad: false)
                let loss = withNoGrad { gaussianFrequencyLoss(s, t, rho: 0.25, focalAlpha: alpha) }
                let reference = fullSpectrumLoss(s, t, rho: 0.25, alpha: alpha)
                XCTAssertEqual(
                    Double(loss.item), reference, accuracy: 1e-5 * max(1, reference), "\(h)x\(w) alpha \(alpha)")
            }
        }
    }

    func testMaskAndGradients() {
        let mask = gaussianFrequencyMask(height: 4, width: 5, rho: 0.5)
        // sigma = 2; (u, v) = (3, 2) has signed frequencies (-1, 2).
        XCTAssertEqual(mask[3 * 5 + 2], Foundation.exp(-5 / 8), accuracy: 1e-6)
        let s = randomTensor([2, 2, 5, 6], seed: 8), t = randomTensor([2, 2, 5, 6], seed: 9)
        checkGradients([s, t]) { gaussianFrequencyLoss(s, t, rho: 0.25) }
    }

    func testFocalWeightsAreConstantsInBackward() {
        // The reference derivative holds the focal weights at the unperturbed point.
        let s = randomTensor([1, 2, 5, 6], seed: 10), t = randomTensor([1, 2, 5, 6], seed: 11, requiresGrad: false)
        gaussianFrequencyLoss(s, t, rho: 0.3, focalAlpha: 1).backward()
        let analytic = s.grad!.array
        let anchor = (s.copy(), t.copy())
        for i in stride(from: 0, to: s.count, by: 7) {
            let original = s.data[i]
            s.data[i] = original + 1e-2
            let plus = fullSpectrumLoss(s, t, rho: 0.3, alpha: 1, frozenFrom: anchor)
            s.data[i] = original - 1e-2
            let minus = fullSpectrumLoss(s, t, rho: 0.3, alpha: 1, frozenFrom: anchor)
            s.data[i] = original
            XCTAssertEqual(
                Double(analytic[i]), (plus - minus) / 2e-2,
                accuracy: 2e-3 * max(1, Swift.abs(Double(analytic[i]))) + 1e-5, "element \(i)")
        }
    }
}
