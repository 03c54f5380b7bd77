import ArgumentParser
import Foundation
import Runtime

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show library versions, the OpenBLAS core and threads, the MPI world, and the models and datasets."
    )

    @Flag(name: .long, help: "Print one JSON object on stdout.")
    var json = false

    func run() throws {
        MPIProcess.initialize()
        let info: [String: Any] = [
            "openblas": [
                "config": BLASCore.configuration,
                "core": BLASCore.coreName,
                "core_reason": BLASCore.reason,
                "threads": BLASCore.threads,
            ],
            "mpi": [
                "library": MPIProcess.libraryVersion,
                "thread_level": MPIProcess.threadLevelName,
                "world_size": MPIProcess.worldSize,
                "rank": MPIProcess.worldRank,
            ],
            "fftw": ["version": NativeVersions.fftw],
            "zlib": ["version": NativeVersions.zlib],
            "models": [[String: Any]](),
            "datasets": [[String: Any]](),
        ]
        if MPIProcess.worldRank != 0 { return }
        if json {
            printJSON(info)
            return
        }
        print("""
            OpenBLAS  \(BLASCore.configuration)
                      core \(BLASCore.coreName) (\(BLASCore.reason)), \(BLASCore.threads) threads
            MPI       \(MPIProcess.libraryVersion), \(MPIProcess.threadLevelName), world size \(MPIProcess.worldSize)
            FFTW      \(NativeVersions.fftw)
            zlib      \(NativeVersions.zlib)
            models    (none yet)
            datasets  (none yet)
            """)
    }
}
