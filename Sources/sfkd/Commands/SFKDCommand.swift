import ArgumentParser
import Settings

struct SFKDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sfkd",
        abstract: "Data-parallel knowledge distillation for image models on CPUs (OpenBLAS, FFTW, Open MPI).",
        subcommands: [
            TrainCommand.self, EvalCommand.self, SweepCommand.self, ImportCommand.self, InfoCommand.self,
            BenchCommand.self,
        ]
    )
}

extension SFKDCommand {
    /// A first word that names no command is the error (the argument parser would instead
    /// complain about the flags after it): names the word, the nearest command and all of them.
    static func checkSubcommand(_ arguments: [String]) throws {
        guard let word = arguments.first, !word.hasPrefix("-") else { return }
        let names = configuration.subcommands.map { $0.configuration.commandName ?? "\($0)" } + ["help"]
        guard !names.contains(word) else { return }
        let nearest = names.min { editDistance($0, word) < editDistance($1, word) }.flatMap {
            editDistance($0, word) <= 2 ? $0 : nil
        }
        throw UserError(
            "'\(word)' is not an sfkd command\(nearest.map { "; did you mean '\($0)'?" } ?? ""); commands: \(names.dropLast().joined(separator: ", "))"
        )
    }
}
