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
SFKDCommand.main()
