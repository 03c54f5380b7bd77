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

    func run() {
        gemm(
            transposeA: false, transposeB: false, m: size, n: size, k: size, a: a.data, lda: size, b: b.data, ldb: size,
            c: c.data, ldc: size)
    }
}
