import Foundation

/// Where a step's time goes, by op family, for `sfkd bench step --profile`. Every op records
/// itself on the tape, so the tape times them: an op's forward is the time since the previous
/// op recorded (its kernels and the glue before it), its backward the run of its closure. Each
/// op names its family when it records itself. Off unless a benchmark turns it on; then
/// single-threaded at the op level, as the training step is.
public enum OpProfile {
    nonisolated(unsafe) public static var isEnabled = false
    nonisolated(unsafe) public private(set) static var forward: [String: Double] = [:]
    nonisolated(unsafe) public private(set) static var backward: [String: Double] = [:]
    nonisolated(unsafe) private static var mark: UInt64 = 0

    /// Clears the totals and starts timing from now.
    public static func reset() {
        forward = [:]
        backward = [:]
        restart()
    }

    /// Starts the next forward interval from now (after work that belongs to no op).
    public static func restart() { mark = DispatchTime.now().uptimeNanoseconds }

    static func forwardOp(_ family: OpFamily) {
        let now = DispatchTime.now().uptimeNanoseconds
        forward[family.rawValue, default: 0] += Double(now &- mark) * 1e-9
        mark = now
    }

    static func backwardOp(_ family: OpFamily, _ body: () -> Void) {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        backward[family.rawValue, default: 0] += Double(DispatchTime.now().uptimeNanoseconds &- start) * 1e-9
    }
}

/// What an op is, for the profile's table: every op that records itself on the tape names one.
public enum OpFamily: String, Sendable, CaseIterable {
    case gemm = "GEMM (matmul, linear)"
    case convolution = "convolution (unfold + GEMM, depthwise)"
    case attention = "attention"
    case normalization = "normalisation"
    case elementwise = "elementwise"
    case reductions = "reductions, softmax, losses"
    case copies = "copies and reshapes"
    case pooling = "pooling"
    case spectral = "spectral (Haar DWT, FFT loss)"
}
