import Cluster
import Foundation
import Tensors
import Training

#if SFKD_REQUIRES_AVX2
    // The release build's kernels use AVX2 (Package.swift): say so rather than die of SIGILL.
    let cpuFlags = BLASCore.cpuFlags()
    if !cpuFlags.isEmpty && !(cpuFlags.contains("avx2") && cpuFlags.contains("fma")) {
        FileHandle.standardError.write(
            "sfkd: this binary was built for AVX2 + FMA (Haswell or later) and this CPU lacks them; rebuild with SFKD_TARGET_CPU=x86-64 swift build -c release\n"
                .data(using: .utf8)!)
        exit(2)
    }
#endif
// Must run before anything touches MPI or threads: it may re-execute the binary with a faster
// OpenBLAS kernel set.
BLASCore.selectFastCoreOrReexec()
// Before any thread starts: no signal handler may interrupt a oneDNN kernel.
SignalShield.install()
// Never compute with a kernel set that gives wrong numbers on this CPU.
do {
    try BLASCore.selfCheck()
} catch {
    FileHandle.standardError.write("sfkd: \(error)\n".data(using: .utf8)!)
    exit(2)
}
// Like SFKDCommand.main(), except that an error on one rank of a multi-rank job aborts the whole
// job (with the rank in the message) instead of finalising MPI while the others wait for it, a
// stop on SIGINT/SIGTERM exits with the shell's status for it, and errors read as one sentence.
do {
    try SFKDCommand.checkSubcommand(Array(CommandLine.arguments.dropFirst()))
    var command = try SFKDCommand.parseAsRoot()
    try command.run()
} catch {
    let stopped = error as? TrainingStopped
    let message = stopped?.description ?? plainMessage(for: error) ?? SFKDCommand.fullMessage(for: error)
    let code =
        stopped?.exitCode
        ?? {
            let code = SFKDCommand.exitCode(for: error).rawValue
            return code == 0 ? 1 : code
        }()
    if let stopped, stopped.everyRankStopped, MPIProcess.isParallel {
        // Every rank stopped after the same step and its checkpoint is written: end normally
        // (MPI_Finalize at exit), rank 0 saying why, so mpirun returns the status.
        if MPIProcess.worldRank == 0 { FileHandle.standardError.write("sfkd: \(message)\n".data(using: .utf8)!) }
        exit(code)
    }
    if MPIProcess.isParallel {
        FileHandle.standardError.write("sfkd rank \(MPIProcess.worldRank): \(message)\n".data(using: .utf8)!)
        MPIProcess.abort(code: code)
    }
    if stopped != nil || plainMessage(for: error) != nil {
        FileHandle.standardError.write("sfkd: \(message)\n".data(using: .utf8)!)
        exit(code)
    }
    SFKDCommand.exit(withError: error)
}
