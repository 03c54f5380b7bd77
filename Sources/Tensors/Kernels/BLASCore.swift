import CBLAS
import Foundation

/// Which OpenBLAS kernel set runs, and why.
///
/// Debian's OpenBLAS 0.3.21 does not know recent CPUs and falls back to generic SSE3 kernels
/// (`Prescott`), 4-5x slower than the AVX-512 (`SkylakeX`) or AVX2 (`Haswell`) ones the CPU can
/// run. OpenBLAS reads `OPENBLAS_CORETYPE` only when it loads, so the choice is made by
/// re-executing the binary with the variable set, before MPI or any thread starts.
public enum BLASCore {
    /// Kernel sets OpenBLAS falls back to when it does not recognise a CPU.
    static let genericCores: Set<String> = [
        "prescott", "katmai", "coppermine", "northwood", "core2", "penryn", "dunnington",
        "atom", "nano", "opteron", "opteron_sse3", "barcelona", "unknown", "generic",
    ]
    static let reasonVariable = "SFKD_BLAS_CORE_REASON"

    public static var coreName: String { String(cString: openblas_get_corename()) }
    public static var configuration: String { String(cString: openblas_get_config()) }

    /// Instruction-set flags of the CPU from /proc/cpuinfo (empty where unavailable).
    public static func cpuFlags() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
            let colon = line.firstIndex(of: ":")
        else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }

    /// The better kernel set for a generic detection, or nil when OpenBLAS's own choice stands.
    public static func preferredCore(detected: String, flags: Set<String>) -> String? {
        guard genericCores.contains(detected.lowercased()) else { return nil }
        if ["avx512f", "avx512bw", "avx512vl", "avx512dq"].allSatisfy(flags.contains) { return "SkylakeX" }
        if ["avx2", "fma"].allSatisfy(flags.contains) { return "Haswell" }
        return nil
    }

    /// Re-executes this process with a better `OPENBLAS_CORETYPE` when OpenBLAS picked a generic
    /// core and the user set none. Returns only when no re-exec is needed (or it failed, in
    /// which case the reason records that).
    public static func selectFastCoreOrReexec() {
        let environment = ProcessInfo.processInfo.environment
        if environment["OPENBLAS_CORETYPE"] != nil { return }
        let detected = coreName
        guard let better = preferredCore(detected: detected, flags: cpuFlags()) else { return }
        let reason =
            "OpenBLAS detected the generic core \(detected) on a CPU with \(better == "SkylakeX" ? "AVX-512" : "AVX2"); sfkd chose \(better)"
        setenv("OPENBLAS_CORETYPE", better, 1)
        setenv(reasonVariable, reason, 1)
        let arguments = CommandLine.unsafeArgv
        execv("/proc/self/exe", arguments)
        // execv returned: keep running on the slow kernels, but say so.
        unsetenv("OPENBLAS_CORETYPE")
        setenv(
            reasonVariable, "re-exec with OPENBLAS_CORETYPE=\(better) failed (errno \(errno)); running on \(detected)",
            1)
    }

    /// Why the running core was chosen, for `sfkd info`.
    public static var reason: String {
        let environment = ProcessInfo.processInfo.environment
        if let chosen = environment[reasonVariable] { return chosen }
        if let set = environment["OPENBLAS_CORETYPE"] { return "set by the user (OPENBLAS_CORETYPE=\(set))" }
        return "detected by OpenBLAS"
    }

    public struct SelfCheckError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Multiplies odd-sized matrices with sgemm and with a naive loop; a mismatch means the
    /// kernel set is broken on this CPU, which must never go unnoticed.
    public static func selfCheck() throws {
        let m = 37, n = 29, k = 53
        var generator = RandomGenerator(seed: 12345)
        let a = (0..<(m * k)).map { _ in generator.nextUniform() - 0.5 }
        let b = (0..<(k * n)).map { _ in generator.nextUniform() - 0.5 }
        var c = [Float](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    gemm(
                        transposeA: false, transposeB: false, m: m, n: n, k: k, a: pa.baseAddress!, lda: k,
                        b: pb.baseAddress!, ldb: n, c: pc.baseAddress!, ldc: n)
                }
            }
        }
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var reference = 0.0
                for p in 0..<k { reference += Double(a[i * k + p]) * Double(b[p * n + j]) }
                worst = max(worst, Swift.abs(reference - Double(c[i * n + j])))
            }
        }
        if !(worst < 1e-4) {
            throw SelfCheckError(
                description: """
                    OpenBLAS self-check failed on core \(coreName): sgemm differs from a plain loop by \(worst). \
                    The kernel set does not work on this CPU; set OPENBLAS_CORETYPE to an older core (e.g. Haswell or Prescott).
                    """)
        }
    }
}
