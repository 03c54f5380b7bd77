import Foundation
import Tensors

/// Signed frequency index of bin u of an n-point DFT (numpy's fftfreq times n).
@inline(__always)
func signedFrequency(_ u: Int, _ n: Int) -> Int { u < (n + 1) / 2 ? u : u - n }

/// The Gaussian low-pass weight G(u, v) = exp(-(u~^2 + v~^2) / (2 sigma^2)) over the full
/// height x width spectrum, sigma = rho * min(height, width).
public func gaussianFrequencyMask(height: Int, width: Int, rho: Float) -> [Float] {
    let sigma = rho * Float(min(height, width))
    var mask = [Float](repeating: 0, count: height * width)
    for u in 0..<height {
        for v in 0..<width {
            let fu = Float(signedFrequency(u, height)), fv = Float(signedFrequency(v, width))
            mask[u * width + v] = Foundation.exp(-(fu * fu + fv * fv) / (2 * sigma * sigma))
        }
    }
    return mask
}

/// Gaussian-filtered frequency loss between two (B, C, H, W) maps:
///   sum_{b,c,u,v} G(u,v) w(b,c,u,v) |F(s)(u,v) - F(t)(u,v)|^2 / (B C sum_{u,v} G(u,v))
/// with the orthonormal 2-D DFT F. It is computed on FFTW's half spectrum, each column
/// weighted by how often it occurs in the full one; since F is linear, F(s) - F(t) = F(s - t).
/// With `focalAlpha` > 0, w = (|dF| / max_{u,v} |dF|)^alpha per (b, c), a constant in the
/// backward pass (as in Focal Frequency Loss); otherwise w = 1.
public func gaussianFrequencyLoss(_ s: Tensor, _ t: Tensor, rho: Float, focalAlpha: Float = 0) -> Tensor {
    ensure(
        s.rank == 4 && s.shape == t.shape,
        "gaussianFrequencyLoss: shapes \(s.shape) and \(t.shape) must be equal (B, C, H, W)")
    ensure(rho > 0, "gaussianFrequencyLoss: rho must be positive, got \(rho)")
    let planes = s.shape[0] * s.shape[1], height = s.shape[2], width = s.shape[3]
    let fft = RealFFT2D.plan(height: height, width: width, count: planes)
    let halfWidth = fft.spectrumWidth
    let mask = gaussianFrequencyMask(height: height, width: width, rho: rho)
    let maskSum = mask.reduce(0, +)
    let normalisation = 1 / Float(Double(height * width).squareRoot())

    // Difference, then its spectrum (scratch tensors come from the pool, 64-byte aligned).
    let difference = Tensor(uninitializedShape: s.shape)
    for i in 0..<s.count { difference.data[i] = s.data[i] - t.data[i] }
    let spectrum = Tensor(uninitializedShape: [planes, height, halfWidth, 2])
    fft.forward(difference.data, spectrum.data)
    // Weighted spectrum W = m * G * w * F(d) / sqrt(HW), kept for backward; loss = sum m G w |F|^2.
    let weighted = Tensor(uninitializedShape: spectrum.shape)
    let ps = spectrum.data, pw = weighted.data
    var total = 0.0
    for p in 0..<planes {
        let base = p * height * halfWidth * 2
        var focalScale: Float = 1
        if focalAlpha > 0 {
            var largest: Float = 0
            for k in 0..<(height * halfWidth) {
                let re = ps[base + 2 * k], im = ps[base + 2 * k + 1]
                largest = max(largest, (re * re + im * im).squareRoot())
            }
            focalScale = largest > 0 ? 1 / largest : 0
        }
        var planeTotal: Float = 0
        for u in 0..<height {
            for v in 0..<halfWidth {
                let k = u * halfWidth + v
                let rawRe = ps[base + 2 * k], rawIm = ps[base + 2 * k + 1]
                let re = rawRe * normalisation, im = rawIm * normalisation
                let magnitudeSquared = re * re + im * im
                var weight = mask[u * width + v]
                if focalAlpha > 0 {
                    // |dF| / max |dF| is the same with or without the orthonormal scaling.
                    weight *= Float(
                        pow(Double((rawRe * rawRe + rawIm * rawIm).squareRoot() * focalScale), Double(focalAlpha)))
                }
                planeTotal += fft.multiplicity(column: v) * weight * magnitudeSquared
                pw[base + 2 * k] = weight * re
                pw[base + 2 * k + 1] = weight * im
            }
        }
        total += Double(planeTotal)
    }
    let scale = 1 / (Float(planes) * maskSum)
    let out = Tensor(scalar: Float(total) * scale)
    Tape.current.record(out, inputs: [s, t], family: .spectral) { g in
        // dL/dd = 2 scale F^H(G w F(d)) = 2 scale c2r(G w F_ortho(d)) / sqrt(HW): real because G is
        // symmetric in (u, v) and F(d) Hermitian, which is what lets c2r stand in for the full inverse.
        let factor = 2 * scale * g.data[0] * normalisation
        let buffer = weighted.copy()
        let gd = Tensor(uninitializedShape: s.shape)
        fft.inverse(buffer.data, gd.data)
        if s.requiresGrad {
            let gs = Tensor(uninitializedShape: s.shape)
            Tensors.scale(gd.data, by: factor, into: gs.data, count: gs.count)
            accumulateGradient(s, gs)
        }
        if t.requiresGrad {
            let gt = Tensor(uninitializedShape: t.shape)
            Tensors.scale(gd.data, by: -factor, into: gt.data, count: gt.count)
            accumulateGradient(t, gt)
        }
    }
    return out
}
