import ArgumentParser
import Foundation
import Runtime
import Tensors

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that report speed next to a baseline measured in the same run.",
        subcommands: [OpsBenchCommand.self]
    )
}

struct OpsBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops",
        abstract: "sgemm, conv2d, attention and elementwise kernels against sgemm and memory-copy baselines."
    )

    @Option(name: .long, help: "Threads for OpenBLAS and the kernels.")
    var threads: Int = 1

    @Option(name: .long, help: "Timed repetitions per measurement (the median is reported).")
    var repeats: Int = 7

    @Option(name: .long, help: "Measure only these parts (repeatable): \(OpsBenchmark.Part.allCases.map(\.rawValue).joined(separator: ", ")). The sgemm baseline always runs.")
    var only: [OpsBenchmark.Part] = []

    @Flag(name: .long, help: "Print one JSON object on stdout.")
    var json = false

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1, got \(repeats)") }
    }

    func run() throws {
        Threads.configure(threads)
        var benchmark = OpsBenchmark(repeats: repeats)
        if !only.isEmpty { benchmark.parts = Set(only) }
        let results = benchmark.run(progress: json ? { _ in } : report)
        if json {
            var object = results
            object["openblas_core"] = BLASCore.coreName
            object["threads"] = threads
            printJSON(object)
        }
    }
}
