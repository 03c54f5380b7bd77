import ArgumentParser
import Foundation
import Settings
import Tensors
import Training

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract:
            "Train a grid of settings x seeds from one YAML file (finished runs reused, interrupted ones resumed) and write the table of mean ± std over seeds.",
        discussion: """
            The file holds `base:` (sfkd train keys for every run, or `config: FILE`), `prepare:` (runs trained first, once: \
            `"{prepare.NAME}"` in a value is the model file one writes), `grid:` (keys with lists of values: every combination) \
            and `seeds:`. Runs go to OUT/runs/<settings>, logs to OUT/logs; OUT/results.md and OUT/results.json hold the table \
            (launch/report draws it). With --parallel N, N runs train at a time on threads/N threads each.
            """
    )

    @Argument(help: "The sweep file (YAML).") var file: String
    @Option(help: "Folder for the sweep (default runs/<name>).") var out: String?
    @Option(help: "Runs trained at the same time.") var parallel: Int = 1
    @Option(help: "Threads shared by the runs (default: every core).") var threads: Int = ProcessInfo.processInfo
        .activeProcessorCount
    @Option(
        name: .customLong("set"),
        help:
            "KEY=VALUE: replace a base setting (repeatable), e.g. --set epochs=1; prepare.NAME.KEY=VALUE for a prepare run."
    ) var overrides: [String] = []
    @Option(help: "Seeds instead of the file's, e.g. 0,1.") var seeds: String?
    @Option(
        name: .customLong("max-runs"), help: "Most runs the sweep may plan (a guard against a grid too large to train)."
    )
    var maxRuns: Int = SweepPlan.defaultMaximumRuns
    @Flag(name: .customLong("dry-run"), help: "List the runs and stop.") var dryRun = false

    func validate() throws {
        guard parallel >= 1, threads >= 1 else { throw ValidationError("--parallel and --threads must be at least 1") }
        guard maxRuns >= 1 else { throw ValidationError("--max-runs must be at least 1, got \(maxRuns)") }
        for entry in overrides where !entry.contains("=") {
            throw ValidationError("--set takes KEY=VALUE, got '\(entry)'")
        }
        if let seeds, seedList(seeds) == nil {
            throw ValidationError("--seeds takes whole numbers separated by commas, got '\(seeds)'")
        }
    }

    func seedList(_ text: String) -> [Int]? {
        let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        return values.isEmpty || values.contains(nil) ? nil : values.compactMap { $0 }
    }

    func run() throws {
        let pairs = overrides.map { entry -> (String, String) in
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            return (parts[0], parts.count > 1 ? parts[1] : "")
        }
        let name = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        var output = out ?? "runs/\(name)"
        var plan = try SweepPlan(
            file: file, overrides: pairs, seeds: seeds.flatMap(seedList), output: output, maximumRuns: maxRuns)
        if out == nil && plan.name != name {
            output = "runs/\(plan.name)"
            plan = try SweepPlan(
                file: file, overrides: pairs, seeds: seeds.flatMap(seedList), output: output, maximumRuns: maxRuns)
        }
        report(
            "sweep \(plan.name): \(plan.prepare.count) prepare run(s), \(plan.runs.count) runs (\(plan.axes.joined(separator: " x ")) x \(plan.seeds.count) seeds) in \(output)"
        )
        if dryRun {
            for run in plan.prepare { print("prepare.\(run.name)\t\(run.config.output)") }
            for run in plan.runs { print("\(run.name)\t\(run.config.output)") }
            return
        }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        var runner = SweepRunner(
            plan: plan, output: output, executable: executable, threads: threads, parallel: parallel)
        runner.report = { line in report(line) }
        let outcomes = try runner.run()
        let results = SweepResults(plan: plan, outcomes: outcomes)
        try results.write(to: output)
        print(results.markdown(), terminator: "")
        let failed = results.runs.filter { $0.outcome.hasPrefix("failed") }
        if !failed.isEmpty {
            throw UserError(
                "sweep: \(failed.count) of \(results.runs.count) runs failed (\(failed.map(\.name).joined(separator: ", "))); their logs are in \(output)/logs; run the sweep again to retry them"
            )
        }
    }
}
