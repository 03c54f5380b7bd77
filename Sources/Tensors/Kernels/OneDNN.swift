import CDNNL

#if canImport(Glibc)
    import Glibc
#endif

/// oneDNN, the library PyTorch runs its CPU convolutions and matrix products on.
///
/// Debian builds it on OpenMP. sfkd keeps one thread budget: it calls oneDNN with one OpenMP
/// thread on whichever of its own threads runs the op, and splits work across `Threads.count`
/// threads itself, as it does with OpenBLAS. OpenMP never starts a thread of its own, so nothing
/// spins between ops, and under mpirun each rank stays on the cores it was bound to.
public enum OneDNN {
    /// "2.6.3", as the library reports it.
    public static var version: String {
        guard let v = dnnl_version() else { return "unknown" }
        return "\(v.pointee.major).\(v.pointee.minor).\(v.pointee.patch)"
    }

    /// The instruction set oneDNN dispatches to on this CPU (its own names: avx2,
    /// avx512_core, avx512_core_bf16, avx512_core_amx, ...).
    public static var instructionSet: String {
        let isa = dnnl_get_effective_cpu_isa()
        let names: [(dnnl_cpu_isa_t, String)] = [
            (dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"), (dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"),
            (dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"), (dnnl_cpu_isa_avx512_core, "avx512_core"),
            (dnnl_cpu_isa_avx2_vnni, "avx2_vnni"), (dnnl_cpu_isa_avx2, "avx2"), (dnnl_cpu_isa_avx, "avx"),
            (dnnl_cpu_isa_sse41, "sse41"),
        ]
        return names.first { $0.0 == isa }?.1 ?? "isa \(isa.rawValue)"
    }

    /// Whether oneDNN runs bfloat16 arithmetic in hardware here (AVX512_BF16 or AMX).
    public static var hasBFloat16: Bool {
        let isa = dnnl_get_effective_cpu_isa()
        return isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx
    }

    /// Keeps oneDNN on the calling thread: OpenMP's thread count is a per-thread setting, and a
    /// thread that never set it would start a team of one thread per core.
    @inline(__always)
    static func stayOnThisThread() {
        if omp_get_max_threads() != 1 { omp_set_num_threads(1) }
    }
}

/// Which library runs a float32 matrix product. `automatic` takes the faster for this machine
/// (see `GEMMKernel.automaticChoice`); tests and `bench ops` pin one to compare them, and
/// `SFKD_GEMM=openblas|onednn` in the environment pins one for a whole run.
public enum GEMMKernel: String, Sendable, CaseIterable {
    case automatic
    case openBLAS = "openblas"
    case oneDNN = "onednn"

    nonisolated(unsafe) public static var choice = fromEnvironment("SFKD_GEMM") ?? .automatic

    /// Runs `body` with `kernel` pinned, then goes back to the previous choice.
    public static func pinned<T>(_ kernel: GEMMKernel, _ body: () throws -> T) rethrows -> T {
        let previous = choice
        choice = kernel
        defer { choice = previous }
        return try body()
    }

    /// oneDNN's sgemm, measured with `bench ops` against OpenBLAS's on the products of the
    /// models' steps (Zen 4, AVX-512: 1.05-1.25x on one core at every shape from 64x64x288 up;
    /// its AVX2 kernels are PyTorch's on Zen 3 too).
    public static var automaticChoice: GEMMKernel { .oneDNN }

    /// The library that runs products under the current choice.
    public static var effective: GEMMKernel { choice == .automatic ? automaticChoice : choice }
}

extension RawRepresentable where RawValue == String, Self: CaseIterable {
    /// The value an environment variable names; a name that is not a case stops the program
    /// with the accepted ones (a pinned kernel is a deliberate choice, not to be ignored).
    static func fromEnvironment(_ variable: String) -> Self? {
        guard let text = getenv(variable).map({ String(cString: $0) }), !text.isEmpty else { return nil }
        guard let value = Self(rawValue: text) else {
            let accepted = allCases.map(\.rawValue).joined(separator: ", ")
            fputs("Error: \(variable)=\(text): expected one of \(accepted)\n", stderr)
            exit(2)
        }
        return value
    }
}
