import Foundation
import ModelFiles
import Tensors

/// A sweep's results: every run's `summary.json`, and per setting (the grid's values, seeds
/// pooled) the mean and sample standard deviation over seeds of the test top-1 at the best
/// validation epoch, the best validation top-1, and the last epoch's validation and test
/// top-1, with the method's extra parameters and the wall time per run. Written as
/// `results.json` (what `launch/report` reads) and `results.md`.
public struct SweepResults {
    public struct Statistic: Codable, Equatable, Sendable {
        public let mean: Double
        /// Sample standard deviation (n - 1); nil for one seed.
        public let std: Double?
        public let n: Int

        init?(_ values: [Double]) {
            guard !values.isEmpty else { return nil }
            let n = values.count, mean = values.reduce(0, +) / Double(n)
            self.n = n
            self.mean = mean
            std = n > 1 ? (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n - 1)).squareRoot() : nil
        }
    }

    public struct Group: Codable, Sendable {
        public let settings: [String: String]
        public let seeds: Int
        public let bestTestTop1: Statistic?, bestValTop1: Statistic?, lastValTop1: Statistic?, lastTestTop1: Statistic?
        public let helperParameters: Int
        public let wallSeconds: Statistic?

        enum CodingKeys: String, CodingKey {
            case settings, seeds
            case bestTestTop1 = "best_test_top1", bestValTop1 = "best_val_top1", lastValTop1 = "last_val_top1",
                lastTestTop1 = "last_test_top1"
            case helperParameters = "helper_parameters", wallSeconds = "wall_seconds"
        }
    }

    public struct RunEntry: Codable, Sendable {
        public let name: String
        public let settings: [String: String]
        public let seed: Int
        public let folder: String
        public let summary: RunSummary?
        public let outcome: String
    }

    public let name: String
    public let axes: [String]
    public let seeds: [Int]
    public let runs: [RunEntry]
    public let groups: [Group]

    public init(plan: SweepPlan, outcomes: [String: SweepRunner.Outcome]) {
        name = plan.name
        axes = plan.axes
        seeds = plan.seeds
        let runs = plan.runs.map { run in
            let file = (run.config.output as NSString).appendingPathComponent("summary.json")
            let summary = FileManager.default.contents(atPath: file).flatMap {
                try? JSONDecoder().decode(RunSummary.self, from: $0)
            }
            let outcome: String
            switch outcomes[run.name] {
            case .reused?: outcome = "reused"
            case .trained?: outcome = "trained"
            case .failed(let why)?: outcome = "failed: \(why)"
            case nil: outcome = summary == nil ? "not run" : "reused"
            }
            return RunEntry(
                name: run.name, settings: Dictionary(uniqueKeysWithValues: run.settings.map { ($0.key, $0.value) }),
                seed: run.seed ?? 0, folder: run.config.output, summary: summary, outcome: outcome)
        }
        self.runs = runs
        var order: [[String: String]] = []
        for run in runs where !order.contains(run.settings) { order.append(run.settings) }
        groups = order.map { settings in
            let members = runs.filter { $0.settings == settings }.compactMap(\.summary)
            return Group(
                settings: settings, seeds: members.count,
                bestTestTop1: Statistic(members.compactMap { $0.best?.testTop1 }),
                bestValTop1: Statistic(members.compactMap { $0.best?.valTop1 }),
                lastValTop1: Statistic(members.compactMap(\.valTop1)),
                lastTestTop1: Statistic(members.map(\.testTop1)),
                helperParameters: members.first?.helperParameters ?? 0,
                wallSeconds: Statistic(members.map(\.wallSeconds)))
        }
    }

    public func json() throws -> Data {
        struct File: Encodable {
            let name: String, axes: [String], seeds: [Int], runs: [RunEntry], groups: [Group]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return try encoder.encode(File(name: name, axes: axes + ["seed"], seeds: seeds, runs: runs, groups: groups))
            + Data("\n".utf8)
    }

    /// The table: a row per setting, mean ± std over seeds (top-1 in percent).
    public func markdown() -> String {
        func cell(_ statistic: Statistic?) -> String {
            guard let statistic else { return "—" }
            return String(format: "%.2f", 100 * statistic.mean)
                + (statistic.std.map { String(format: " ± %.2f", 100 * $0) } ?? "")
        }
        let head =
            axes + [
                "seeds", "test top-1 at best val", "best val top-1", "last val top-1", "last test top-1",
                "extra params", "wall per run",
            ]
        var lines = [
            "# Sweep \(name)", "",
            "\(runs.count) runs, seeds \(seeds.map(String.init).joined(separator: ", ")); mean ± sample standard deviation over seeds; the best epoch is chosen on validation.",
            "",
            "| " + head.joined(separator: " | ") + " |", "|" + String(repeating: "---|", count: head.count),
        ]
        for group in groups {
            let cells =
                axes.map { group.settings[$0] ?? "" } + [
                    "\(group.seeds)", cell(group.bestTestTop1), cell(group.bestValTop1), cell(group.lastValTop1),
                    cell(group.lastTestTop1), "\(group.helperParameters)",
                    group.wallSeconds.map { "\(Int($0.mean.rounded())) s" } ?? "—",
                ]
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        let failed = runs.filter { $0.outcome.hasPrefix("failed") || $0.outcome == "not run" }
        if !failed.isEmpty {
            lines += ["", "Missing: " + failed.map { "\($0.name) (\($0.outcome))" }.joined(separator: "; ")]
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public func write(to output: String) throws {
        try writeAtomically(try json(), to: (output as NSString).appendingPathComponent("results.json"))
        try writeAtomically(Data(markdown().utf8), to: (output as NSString).appendingPathComponent("results.md"))
    }
}
