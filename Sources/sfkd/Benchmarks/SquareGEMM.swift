import Tensors

/// The GEMM baseline the benchmarks compare with: C = A B with square float32 matrices
/// (1024 x 1024 in `bench ops` and `bench step`), through the same `gemm` the ops call.
struct SquareGEMM {
    let size: Int
    let a, b, c: Tensor

    init(size: Int) {
        self.size = size
        a = Tensor(repeating: 0.5, shape: [size, size])
        b = Tensor(repeating: 0.25, shape: [size, size])
        c = Tensor(zeros: [size, size])
    }

    var flops: Double { 2 * Double(size * size * size) }

    /// One product on `kernel` (the automatic choice by default), at `precision` (bfloat16:
    /// the rounding of A and B included, as every product under autocast pays it).
    func run(on kernel: GEMMKernel = .automatic, precision: Precision = .float32) {
        GEMMKernel.pinned(kernel) {
            gemm(
                transposeA: false, transposeB: false, m: size, n: size, k: size, a: a.data, lda: size, b: b.data,
                ldb: size, c: c.data, ldc: size, precision: precision)
        }
    }
}

/// The machine's best dense float32 rate, the limit model FLOP utilisation is measured against:
/// the faster of OpenBLAS's and oneDNN's sgemm at 1024^3, timed in turn in the same run.
struct DenseRate: Encodable {
    let openblasGFLOPS: Double, onednnGFLOPS: Double
    /// oneDNN's bfloat16 product at 1024^3 (the rounding of its inputs included), measured when
    /// the benchmark runs at bfloat16: then the best rate is this one (emulated on a CPU without
    /// bfloat16 instructions, so there no faster than float32).
    let bfloat16GFLOPS: Double?

    enum CodingKeys: String, CodingKey {
        case openblasGFLOPS = "openblas_sgemm_gflops", onednnGFLOPS = "onednn_sgemm_gflops", best = "best_gflops",
            bestKernel = "best_kernel", bfloat16GFLOPS = "bf16_gemm_gflops"
    }

    init(openblasGFLOPS: Double, onednnGFLOPS: Double, bfloat16GFLOPS: Double? = nil) {
        self.openblasGFLOPS = openblasGFLOPS
        self.onednnGFLOPS = onednnGFLOPS
        self.bfloat16GFLOPS = bfloat16GFLOPS
    }

    /// Times both libraries on `gemm`'s matrices, alternately, `repeats` rounds.
    init(measuring gemm: SquareGEMM, repeats: Int) {
        let seconds = alternatingMedianSeconds(
            repeats: repeats, [{ gemm.run(on: .openBLAS) }, { gemm.run(on: .oneDNN) }])
        self.init(openblasGFLOPS: gemm.flops / seconds[0] * 1e-9, onednnGFLOPS: gemm.flops / seconds[1] * 1e-9)
    }

    var best: Double { bfloat16GFLOPS ?? max(openblasGFLOPS, onednnGFLOPS) }

    /// The best rate of products at `precision`.
    func rate(for precision: Precision) -> Double {
        precision == .bfloat16 ? bfloat16GFLOPS ?? best : max(openblasGFLOPS, onednnGFLOPS)
    }
    var bestKernel: String {
        if bfloat16GFLOPS != nil { return "bf16 gemm (\(BFloat16Arithmetic.effective.rawValue))" }
        return onednnGFLOPS >= openblasGFLOPS ? "oneDNN sgemm" : "OpenBLAS sgemm"
    }

    /// "oneDNN sgemm 111.2 GFLOP/s (OpenBLAS 95.0)".
    var summary: String {
        let float32 = "oneDNN sgemm \(formatted(onednnGFLOPS)), OpenBLAS \(formatted(openblasGFLOPS))"
        if let bfloat16GFLOPS {
            return "\(bestKernel) \(formatted(bfloat16GFLOPS)) GFLOP/s at 1024^3 (\(float32))"
        }
        let other =
            onednnGFLOPS >= openblasGFLOPS
            ? "OpenBLAS \(formatted(openblasGFLOPS))" : "oneDNN \(formatted(onednnGFLOPS))"
        return "\(bestKernel) \(formatted(best)) GFLOP/s at 1024^3 (\(other))"
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(openblasGFLOPS, forKey: .openblasGFLOPS)
        try container.encode(onednnGFLOPS, forKey: .onednnGFLOPS)
        try container.encode(best, forKey: .best)
        try container.encode(bestKernel, forKey: .bestKernel)
        try container.encodeIfPresent(bfloat16GFLOPS, forKey: .bfloat16GFLOPS)
    }
}
