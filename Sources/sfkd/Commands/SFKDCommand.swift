import ArgumentParser

struct SFKDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sfkd",
        abstract: "Data-parallel knowledge distillation for image models on CPUs (OpenBLAS, FFTW, Open MPI).",
        subcommands: [TrainCommand.self, EvalCommand.self, SweepCommand.self, ImportCommand.self, InfoCommand.self, BenchCommand.self]
    )
}
