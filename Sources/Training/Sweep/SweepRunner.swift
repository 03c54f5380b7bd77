import Foundation
import ModelFiles
import Settings
import Tensors

/// Runs a sweep's runs as `sfkd train` processes: the prepare runs first, then the grid,
/// `parallel` at a time with the cores split between them. A run whose folder holds a
/// `summary.json` is reused; one interrupted is resumed from its newest checkpoint; each run's
/// output goes to `logs/NAME.log`. A failed run is reported and the others go on. SIGINT,
/// SIGTERM or SIGUSR1 is passed on to the runs in progress, which checkpoint and stop; no new
/// run starts, and the sweep ends with `TrainingStopped` (running it again continues).
public struct SweepRunner {
    public let plan: SweepPlan
    public let output: String
    public let executable: String
    public var parallel = 1
    public var threadsPerRun: Int
    public var report: @Sendable (String) -> Void = { _ in }

    public init(plan: SweepPlan, output: String, executable: String, threads: Int, parallel: Int) {
        self.plan = plan
        self.output = output
        self.executable = executable
        self.parallel = max(1, parallel)
        threadsPerRun = max(1, threads / max(1, parallel))
    }

    public enum Outcome: Equatable, Sendable { case reused, trained, failed(String) }

    /// Runs everything; returns each run's outcome by name (prepare runs included).
    public func run() throws -> [String: Outcome] {
        StopSignal.install()
        defer { StopSignal.uninstall() }
        let outcomes = try runAll()
        let signal = StopSignal.received
        guard signal == 0 else {
            throw TrainingStopped(
                signal: signal,
                description:
                    "sweep stopped by \(StopSignal.name(signal)): the runs in progress wrote their checkpoints; run the same command again to continue (finished runs are reused, interrupted ones resume)",
                everyRankStopped: true)
        }
        return outcomes
    }

    private func runAll() throws -> [String: Outcome] {
        let fileManager = FileManager.default
        for folder in ["configs", "logs"] {
            try fileManager.createDirectory(
                atPath: (output as NSString).appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        var outcomes: [String: Outcome] = [:]
        // Prepare runs use every core, one after another: the grid needs them all.
        for run in plan.prepare {
            outcomes["prepare.\(run.name)"] = try execute(
                run, label: "prepare.\(run.name)", threads: threadsPerRun * parallel)
            if StopSignal.received != 0 { return outcomes }
            if case .failed(let why) = outcomes["prepare.\(run.name)"]! {
                throw UserError("sweep: prepare run '\(run.name)' failed (\(why)); the grid needs it")
            }
        }
        let lock = NSLock()
        var next = 0
        let total = plan.runs.count
        DispatchQueue.concurrentPerform(iterations: min(parallel, max(total, 1))) { _ in
            while true {
                lock.lock()
                let index = next
                next += 1
                lock.unlock()
                guard index < total, StopSignal.received == 0 else { return }
                let run = plan.runs[index]
                let outcome: Outcome
                do {
                    outcome = try execute(run, label: "[\(index + 1)/\(total)] \(run.name)", threads: threadsPerRun)
                } catch { outcome = .failed("\(error)") }
                lock.lock()
                outcomes[run.name] = outcome
                lock.unlock()
            }
        }
        return outcomes
    }

    private func execute(_ run: SweepPlan.Run, label: String, threads: Int) throws -> Outcome {
        let folder = run.config.output
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: (folder as NSString).appendingPathComponent("summary.json")) {
            report("\(label): finished before, reused")
            return .reused
        }
        var config = run.config
        config.threads = threads
        let configFile = ((output as NSString).appendingPathComponent("configs") as NSString).appendingPathComponent(
            "\(run.seed == nil ? "prepare-" : "")\(run.name).yaml")
        try writeAtomically(Data(try config.yaml().utf8), to: configFile)
        var arguments = ["train", "--config", configFile]
        if fileManager.fileExists(atPath: folder) { arguments.append("--resume") }
        let log = ((output as NSString).appendingPathComponent("logs") as NSString).appendingPathComponent(
            "\(run.seed == nil ? "prepare-" : "")\(run.name).log")
        guard fileManager.createFile(atPath: log, contents: nil), let handle = FileHandle(forWritingAtPath: log) else {
            throw UserError("sweep: cannot create \(log)")
        }
        defer { try? handle.close() }
        report(
            "\(label): training\(arguments.contains("--resume") ? " (resuming)" : "") on \(threads) thread(s), log \(log)"
        )
        let started = Date()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        // A stop signal reaches the run too: it checkpoints and exits with 75 (130 for SIGINT).
        var forwarded = false
        while process.isRunning {
            if StopSignal.received != 0 && !forwarded {
                kill(process.processIdentifier, StopSignal.received)
                forwarded = true
            }
            usleep(50_000)
        }
        process.waitUntilExit()
        if StopSignal.received != 0 {
            report("\(label): stopped (exit \(process.terminationStatus)); it resumes when the sweep runs again")
            return .failed("stopped by \(StopSignal.name(StopSignal.received))")
        }
        guard process.terminationStatus == 0 else {
            let tail =
                (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").suffix(3).joined(
                    separator: " / ") ?? ""
            report("\(label): FAILED (exit \(process.terminationStatus)): \(tail)")
            return .failed("exit \(process.terminationStatus); see \(log)")
        }
        report("\(label): done in \(Int(Date().timeIntervalSince(started))) s")
        return .trained
    }
}
