import ArgumentParser
import Cluster
import Data
import Distill
import Foundation
import Models
import Tensors

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract:
            "Show library versions, the OpenBLAS core and threads, the MPI world, and the models, methods and datasets."
    )

    @Flag(name: .long, help: "Print one JSON object on stdout.")
    var json = false

    struct Info: Encodable {
        struct OpenBLAS: Encodable {
            let config: String, core: String, coreReason: String, threads: Int
            enum CodingKeys: String, CodingKey { case config, core, threads, coreReason = "core_reason" }
        }
        struct MPI: Encodable {
            let library: String, threadLevel: String, worldSize: Int, rank: Int
            enum CodingKeys: String, CodingKey {
                case library, rank, threadLevel = "thread_level", worldSize = "world_size"
            }
        }
        struct Version: Encodable { let version: String }
        struct OneDNN: Encodable {
            let version: String, isa: String, bfloat16: Bool, gemm: String, bfloat16Arithmetic: String
            enum CodingKeys: String, CodingKey {
                case version, isa, gemm, bfloat16 = "bf16_hardware", bfloat16Arithmetic = "bf16_arithmetic"
            }
        }
        struct Tap: Encodable {
            let shape: [Int], layout: String, prefixTokens: Int?, grid: [Int]?
            enum CodingKeys: String, CodingKey { case shape, layout, grid, prefixTokens = "prefix_tokens" }
        }
        struct Model: Encodable {
            let name: String, family: String, summary: String, parameters: Int, arguments: [String], taps: [Tap]
        }
        struct Method: Encodable {
            let name: String, summary: String, needsTeacher: Bool, settings: [String]
            enum CodingKeys: String, CodingKey { case name, summary, settings, needsTeacher = "needs_teacher" }
        }
        struct Dataset: Encodable {
            let name: String, summary: String, defaultDirectory: String?
            enum CodingKeys: String, CodingKey { case name, summary, defaultDirectory = "default_directory" }
        }
        let openblas: OpenBLAS, onednn: OneDNN, mpi: MPI, fftw: Version, zlib: Version
        let models: [Model], methods: [Method], datasets: [Dataset]
    }

    func run() throws {
        MPIProcess.initialize()
        let info = Info(
            openblas: .init(
                config: BLASCore.configuration, core: BLASCore.coreName, coreReason: BLASCore.reason,
                threads: Threads.count),
            onednn: .init(
                version: Tensors.OneDNN.version, isa: Tensors.OneDNN.instructionSet,
                bfloat16: Tensors.OneDNN.hasBFloat16, gemm: GEMMKernel.effective.rawValue,
                bfloat16Arithmetic: BFloat16Arithmetic.effective.rawValue),
            mpi: .init(
                library: MPIProcess.libraryVersion, threadLevel: MPIProcess.threadLevelName,
                worldSize: MPIProcess.worldSize, rank: MPIProcess.worldRank),
            fftw: .init(version: NativeVersions.fftw), zlib: .init(version: NativeVersions.zlib),
            models: try models(),
            methods: MethodRegistry.methods.map {
                .init(
                    name: $0.name, summary: $0.summary, needsTeacher: $0.needsTeacher, settings: $0.settings.map(\.name)
                )
            },
            datasets: DatasetRegistry.entries.map {
                .init(name: $0.name, summary: $0.summary, defaultDirectory: $0.defaultDirectory)
            })
        if MPIProcess.worldRank != 0 { return }
        if json {
            try printJSON(info)
            return
        }
        print(
            """
            OpenBLAS  \(info.openblas.config)
                      core \(info.openblas.core) (\(info.openblas.coreReason)); \(info.openblas.threads) threads (sfkd splits GEMMs itself; OpenBLAS runs single-threaded)
            oneDNN    \(info.onednn.version) on \(info.onednn.isa) (bf16 in hardware: \(info.onednn.bfloat16 ? "yes" : "no")); matrix products on \(info.onednn.gemm == "onednn" ? "oneDNN" : "OpenBLAS")\(GEMMKernel.choice == .automatic ? "" : " (SFKD_GEMM)")
            bf16      --precision bf16 runs \(BFloat16Arithmetic.summary)
            MPI       \(info.mpi.library), \(info.mpi.threadLevel), world size \(info.mpi.worldSize)
            FFTW      \(info.fftw.version)
            zlib      \(info.zlib.version)
            """)
        print(
            "models (for a 3x32x32 input, patch-16 models with patch_size=4; token taps are (B, N, C) with the class token first):"
        )
        for model in info.models {
            let taps = model.taps.map {
                "\($0.shape.map(String.init).joined(separator: "x"))\($0.layout == "tokens" ? " tokens" : "")"
            }
            let arguments = model.arguments.isEmpty ? "" : "; --model-args \(model.arguments.joined(separator: ", "))"
            print(
                "  \(model.name.padding(toLength: 22, withPad: " ", startingAt: 0)) \(model.parameters) parameters; taps \(taps.joined(separator: ", "))\(arguments)"
            )
        }
        print("methods (--method; their settings are listed by sfkd train --help):")
        for method in info.methods {
            print(
                "  \(method.name.padding(toLength: 12, withPad: " ", startingAt: 0)) \(method.summary)\(method.needsTeacher ? "; needs --teacher" : "")"
            )
        }
        print("datasets:")
        for entry in info.datasets {
            print(
                "  \(entry.name.padding(toLength: 14, withPad: " ", startingAt: 0)) \(entry.summary)\(entry.defaultDirectory.map { " [\($0)]" } ?? "")"
            )
        }
    }

    /// Every registry model built for 3x32x32 images and 10 classes (patch-16 models with
    /// patch 4, so that 32 divides), with its taps.
    private func models() throws -> [Info.Model] {
        try ModelRegistry.entries.map { entry in
            let arguments = try ModelArguments(entry.arguments.contains("patch_size") ? "patch_size=4" : "")
            let model = try ModelRegistry.make(
                entry.name, inputShape: [3, 32, 32], classes: 10, seed: 0, arguments: arguments)
            let taps = ModelRegistry.describeTaps(model, inputShape: [3, 32, 32]).map { tap -> Info.Tap in
                switch tap.layout {
                case .spatial: return .init(shape: tap.shape, layout: "spatial", prefixTokens: nil, grid: nil)
                case let .tokens(prefix, h, w):
                    return .init(shape: tap.shape, layout: "tokens", prefixTokens: prefix, grid: [h, w])
                }
            }
            return .init(
                name: entry.name, family: entry.family, summary: entry.summary, parameters: model.parameterCount,
                arguments: entry.arguments, taps: taps)
        }
    }
}
