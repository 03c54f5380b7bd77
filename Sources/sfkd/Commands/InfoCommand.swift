import ArgumentParser
import Foundation
import Data
import Models
import Cluster
import Tensors

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
                "threads": Threads.count,
            ],
            "mpi": [
                "library": MPIProcess.libraryVersion,
                "thread_level": MPIProcess.threadLevelName,
                "world_size": MPIProcess.worldSize,
                "rank": MPIProcess.worldRank,
            ],
            "fftw": ["version": NativeVersions.fftw],
            "zlib": ["version": NativeVersions.zlib],
            "models": try modelList(),
            "datasets": DatasetRegistry.entries.map { ["name": $0.name, "summary": $0.summary, "default_directory": $0.defaultDirectory ?? NSNull()] as [String: Any] },
        ]
        if MPIProcess.worldRank != 0 { return }
        if json {
            printJSON(info)
            return
        }
        print("""
            OpenBLAS  \(BLASCore.configuration)
                      core \(BLASCore.coreName) (\(BLASCore.reason)); \(Threads.count) threads (sfkd splits GEMMs itself; OpenBLAS runs single-threaded)
            MPI       \(MPIProcess.libraryVersion), \(MPIProcess.threadLevelName), world size \(MPIProcess.worldSize)
            FFTW      \(NativeVersions.fftw)
            zlib      \(NativeVersions.zlib)
            """)
        print("models (taps for a 3x32x32 input; token taps are (B, N, C) with the class token first):")
        for model in try modelList() {
            let taps = (model["taps"] as! [[String: Any]]).map { tap in
                "\((tap["shape"] as! [Int]).map(String.init).joined(separator: "x"))\(tap["layout"] as! String == "tokens" ? " tokens" : "")"
            }
            print("  \((model["name"] as! String).padding(toLength: 12, withPad: " ", startingAt: 0)) \(model["parameters"]!) parameters; taps \(taps.joined(separator: ", "))")
        }
        print("datasets:")
        for entry in DatasetRegistry.entries {
            print("  \(entry.name.padding(toLength: 14, withPad: " ", startingAt: 0)) \(entry.summary)\(entry.defaultDirectory.map { " [\($0)]" } ?? "")")
        }
    }

    /// Every registry model built for 3x32x32 images and 10 classes, with its taps.
    private func modelList() throws -> [[String: Any]] {
        try ModelRegistry.entries.map { entry in
            let model = try ModelRegistry.make(entry.name, inputShape: [3, 32, 32], classes: 10, seed: 0)
            let taps = ModelRegistry.describeTaps(model, inputShape: [3, 32, 32]).map { tap -> [String: Any] in
                switch tap.layout {
                case .spatial: return ["shape": tap.shape, "layout": "spatial"]
                case let .tokens(prefix, h, w): return ["shape": tap.shape, "layout": "tokens", "prefix_tokens": prefix, "grid": [h, w]]
                }
            }
            return ["name": entry.name, "family": entry.family, "summary": entry.summary, "parameters": model.parameterCount, "taps": taps]
        }
    }
}
