import Foundation

/// Where a step's time goes, by op family, for `sfkd bench step --profile`. Every op records
/// itself on the tape, so the tape times them: an op's forward is the time since the previous
/// op recorded (its kernels and the glue before it), its backward the run of its closure. The
/// family is the source file that defines the op (`Conv2d.swift`: convolution). Off unless a
/// benchmark turns it on; then single-threaded at the op level, as the training step is.
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

    static func forwardOp(_ file: StaticString) {
        let now = DispatchTime.now().uptimeNanoseconds
        forward[family(of: file), default: 0] += Double(now &- mark) * 1e-9
        mark = now
    }

    static func backwardOp(_ file: StaticString, _ body: () -> Void) {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        backward[family(of: file), default: 0] += Double(DispatchTime.now().uptimeNanoseconds &- start) * 1e-9
    }

    /// The family of the ops defined in `file` (a `#fileID`, "Module/File.swift").
    public static func family(of file: StaticString) -> String {
        let name = file.description.split(separator: "/").last.map { String($0.dropLast(6)) } ?? file.description
        return families[name] ?? "other (\(name))"
    }

    static let families: [String: String] = [
        "MatMul": "GEMM (matmul, linear)",
        "Conv2d": "convolution (unfold + GEMM, depthwise)",
        "Attention": "attention", "NarrowHeadAttention": "attention",
        "Normalization": "normalisation",
        "Arithmetic": "elementwise", "Unary": "elementwise", "Dropout": "elementwise",
        "Reductions": "reductions, softmax, losses", "Softmax": "reductions, softmax, losses", "Losses": "reductions, softmax, losses",
        "ShapeOps": "copies and reshapes", "Resize": "copies and reshapes",
        "Pooling": "pooling",
        "HaarDWT": "spectral (Haar DWT, FFT loss)", "GaussianFrequencyLoss": "spectral (Haar DWT, FFT loss)",
    ]
}
