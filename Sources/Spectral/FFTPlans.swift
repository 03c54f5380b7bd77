import CFFTW
import Foundation
import Tensors

/// Batched 2-D real FFTs on FFTW: `count` planes of height x width, real to half-spectrum
/// (height x (width/2 + 1) complex) and back. Plans are made once per (height, width, count)
/// with FFTW_MEASURE (6-110 ms here, so they are cached) under a lock, since FFTW's planner is
/// not thread-safe; executing a plan on new arrays is.
public final class RealFFT2D: @unchecked Sendable {
    public let height: Int
    public let width: Int
    public let count: Int
    public var spectrumWidth: Int { width / 2 + 1 }

    private let forwardPlan: OpaquePointer
    private let inversePlan: OpaquePointer

    private nonisolated(unsafe) static var cache: [[Int]: RealFFT2D] = [:]
    private static let plannerLock = NSLock()

    /// The cached transform for this shape.
    public static func plan(height: Int, width: Int, count: Int) -> RealFFT2D {
        plannerLock.lock()
        defer { plannerLock.unlock() }
        let key = [height, width, count]
        if let plan = cache[key] { return plan }
        let plan = RealFFT2D(height: height, width: width, count: count)
        cache[key] = plan
        return plan
    }

    private init(height: Int, width: Int, count: Int) {
        self.height = height
        self.width = width
        self.count = count
        let realCount = height * width * count
        let complexCount = height * (width / 2 + 1) * count
        // Planning with FFTW_MEASURE overwrites its arrays, so it gets scratch ones.
        let real = fftwf_alloc_real(realCount)!
        let complex = fftwf_alloc_complex(complexCount)!
        defer {
            fftwf_free(real)
            fftwf_free(complex)
        }
        var sizes: [Int32] = [Int32(height), Int32(width)]
        let flags = UInt32(FFTW_MEASURE)
        forwardPlan = fftwf_plan_many_dft_r2c(
            2, &sizes, Int32(count), real, nil, 1, Int32(height * width),
            complex, nil, 1, Int32(height * (width / 2 + 1)), flags)!
        inversePlan = fftwf_plan_many_dft_c2r(
            2, &sizes, Int32(count), complex, nil, 1, Int32(height * (width / 2 + 1)),
            real, nil, 1, Int32(height * width), flags | UInt32(FFTW_DESTROY_INPUT))!
    }

    /// Unnormalised forward transform: `input` count*H*W reals to `output` count*H*(W/2+1)
    /// complex values stored as interleaved (re, im) floats. Both must be 16-byte aligned.
    public func forward(_ input: UnsafeMutablePointer<Float>, _ output: UnsafeMutablePointer<Float>) {
        output.withMemoryRebound(to: fftwf_complex.self, capacity: count * height * spectrumWidth) {
            fftwf_execute_dft_r2c(forwardPlan, input, $0)
        }
    }

    /// Unnormalised inverse (sum over the full Hermitian spectrum); destroys `input`.
    public func inverse(_ input: UnsafeMutablePointer<Float>, _ output: UnsafeMutablePointer<Float>) {
        input.withMemoryRebound(to: fftwf_complex.self, capacity: count * height * spectrumWidth) {
            fftwf_execute_dft_c2r(inversePlan, $0, output)
        }
    }

    /// How often column v of the half spectrum occurs in the full one (1 or 2).
    public func multiplicity(column v: Int) -> Float {
        v == 0 || (width % 2 == 0 && v == width / 2) ? 1 : 2
    }
}
