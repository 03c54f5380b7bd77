import Foundation
import Runtime

// Must run before anything touches MPI or threads: it may re-execute the binary with a faster
// OpenBLAS kernel set.
BLASCore.selectFastCoreOrReexec()
// Never compute with a kernel set that gives wrong numbers on this CPU.
do {
    try BLASCore.selfCheck()
} catch {
    FileHandle.standardError.write("sfkd: \(error)\n".data(using: .utf8)!)
    exit(2)
}
// Like SFKDCommand.main(), except that an error on one rank of a multi-rank job aborts the whole
// job (with the rank in the message) instead of finalising MPI while the others wait for it.
do {
    var command = try SFKDCommand.parseAsRoot()
    try command.run()
} catch {
    if MPIProcess.isParallel {
        let code = SFKDCommand.exitCode(for: error)
        let rank = MPIProcess.worldRank
        FileHandle.standardError.write("sfkd rank \(rank): \(SFKDCommand.fullMessage(for: error))\n".data(using: .utf8)!)
        MPIProcess.abort(code: code.rawValue == 0 ? 1 : code.rawValue)
    }
    SFKDCommand.exit(withError: error)
}
