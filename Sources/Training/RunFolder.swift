import Cluster
import Foundation
import Layers
import ModelFiles
import Models
import Settings
import Tensors

/// The run folder (`--out`): `config.yaml`, `metrics.jsonl` with its per-epoch `summary.csv`
/// (timm's columns) and TensorBoard event files, `checkpoints/step-N/`, `model.safetensors`,
/// `best.safetensors` (the best validation epoch) and `summary.json`. Rank 0 alone reads and writes it (it need not be
/// shared) and tells the other ranks whether that worked, so an error there (a bad path, a full
/// disk) stops every rank instead of leaving them waiting in the next collective.
/// How a run treats what its folder already holds.
public struct RunOptions: Sendable {
    /// Continue from the newest complete checkpoint.
    public var resume = false
    /// Replace a finished or abandoned run.
    public var overwrite = false
    /// Settings that may differ from the saved run at resume (`--allow-change`).
    public var allowedChanges: Set<String> = []

    public init(resume: Bool = false, overwrite: Bool = false, allowedChanges: Set<String> = []) {
        self.resume = resume
        self.overwrite = overwrite
        self.allowedChanges = allowedChanges
    }
}

final class RunFolder {
    let path: String
    private let layout: JobLayout
    private var metrics: MetricsLog?
    private var events: TensorBoardWriter?
    /// The `kind: eval` records so far, one per epoch: the rows of `summary.csv`.
    private var epochRecords: [MetricsRecord] = []
    /// Held by rank 0 from `start` to the end of the run.
    private var lock: RunLock?

    init(path: String, layout: JobLayout) {
        self.path = path
        self.layout = layout
    }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// The files a run writes; a folder holding any of them holds a run.
    static let runFiles = [
        "config.yaml", "classes.txt", "metrics.jsonl", "summary.csv", "checkpoints", "model.safetensors",
        "best.safetensors", "summary.json", "restarts.jsonl",
    ]

    /// The run files present, TensorBoard event files included.
    private func presentRunFiles() -> [String] {
        let events = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter {
            $0.hasPrefix("events.out.tfevents.")
        }.sorted()
        return Self.runFiles.filter { FileManager.default.fileExists(atPath: file($0)) } + events
    }

    /// Locks the folder and writes `config.yaml`. With `resume`, checks the settings against the
    /// saved run and restores the newest complete checkpoint into `modules` and `optimizer` on
    /// rank 0 (the replica group copies it to the other students); without it, refuses a folder
    /// that holds a run unless `overwrite`. Returns the state to continue from, on every rank.
    /// `classNames` (an image folder's classes, in label order) go into `classes.txt`, one per line.
    func start(
        config: TrainingConfig, options: RunOptions, modules: StudentAndHelpers, optimizer: any Optimizer,
        fresh: TrainingState,
        totalSteps: Int, classNames: [String]?, progress: ProgressReporter
    ) throws -> TrainingState {
        var state = fresh
        try onLeader("prepare the run folder \(path)", among: layout.world) {
            try createFolder()
            lock = try RunLock(folder: path)
            let present = presentRunFiles()
            if options.resume {
                if FileManager.default.fileExists(atPath: file("config.yaml")) {
                    var saved = TrainingConfig()
                    try saved.apply(yamlFile: file("config.yaml"))
                    for note in try config.checkResume(against: saved, allowed: options.allowedChanges, folder: path) {
                        progress.message("resume: \(note)")
                    }
                }
                if let newest = Checkpoints.complete(in: path).first {
                    state = try Checkpoints.load(newest.path, modules: modules, optimizer: optimizer)
                    guard state.step == newest.step else {
                        throw UserError(
                            "\(newest.path)/state.json says step \(state.step), but the folder is the checkpoint of step \(newest.step); the checkpoint is damaged: remove it to resume from the one before"
                        )
                    }
                    progress.message("resuming from \(newest.path) (step \(state.step) of \(totalSteps))")
                } else {
                    progress.message("no complete checkpoint in \(Checkpoints.folder(in: path)); starting from step 0")
                }
            } else if !present.isEmpty {
                guard options.overwrite else {
                    throw UserError(
                        "\(path) already holds a run (\(present.joined(separator: ", "))); pass --resume to continue it, --overwrite to replace it, or choose another --out"
                    )
                }
                for name in present { try FileManager.default.removeItem(atPath: file(name)) }
                progress.message("--overwrite: removed \(present.joined(separator: ", ")) from \(path)")
            }
            metrics = try MetricsLog(path: file("metrics.jsonl"), keepingUpTo: options.resume ? state.step : nil)
            epochRecords = try metrics?.records().filter { $0.kind == .eval } ?? []
            events = try TensorBoardWriter(folder: path, resumingAt: options.resume ? state.step : nil)
            if options.resume && !epochRecords.isEmpty {
                try writeAtomically(Data(Self.summaryCSV(epochRecords).utf8), to: file("summary.csv"))
            }
            try writeAtomically(Data(try config.yaml().utf8), to: file("config.yaml"))
            if let classNames {
                try writeAtomically(Data((classNames.joined(separator: "\n") + "\n").utf8), to: file("classes.txt"))
            }
        }
        return try broadcast(state)
    }

    private func createFolder() throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw UserError(
                "cannot create the run folder '\(path)' (\(describeWriteError(error, folder: path))); choose another --out"
            )
        }
    }

    /// Appends a line to `metrics.jsonl` and its scalars to the event file; an epoch's
    /// evaluation also rewrites `summary.csv` (rank 0).
    func log(_ record: MetricsRecord) throws {
        guard let metrics else { return }
        try metrics.append(record)
        try events?.log(record)
        if record.kind == .eval {
            epochRecords.append(record)
            try writeAtomically(Data(Self.summaryCSV(epochRecords).utf8), to: file("summary.csv"))
        }
    }

    /// timm's `summary.csv`: a row per epoch (epoch counted from 0) with the training loss and
    /// each loss term, then `eval_*` on the split that selects the best epoch (validation, or
    /// test without one; top-1/top-5 in percent, as timm), `test_*` too when that is
    /// validation, and the learning rate.
    static func summaryCSV(_ records: [MetricsRecord]) -> String {
        let terms = Set(records.flatMap { $0.values.keys.filter { $0.hasPrefix("train_loss_") } }).sorted()
        let hasValidation = records.contains { $0["val_top1"] != nil }
        let evalSplit = hasValidation ? "val" : "test"
        var columns = ["epoch", "train_loss"] + terms + ["eval_loss", "eval_top1", "eval_top5"]
        if hasValidation { columns += ["test_loss", "test_top1", "test_top5"] }
        columns.append("lr")
        func value(_ record: MetricsRecord, _ column: String) -> String {
            let key: String, scale: Double
            switch column {
            case "eval_loss": (key, scale) = ("\(evalSplit)_loss", 1)
            case "eval_top1", "eval_top5": (key, scale) = ("\(evalSplit)_\(column.dropFirst(5))", 100)
            case "test_top1", "test_top5": (key, scale) = (column, 100)
            default: (key, scale) = (column, 1)
            }
            if column == "epoch" { return "\(record.epoch)" }
            return record[key].map { "\($0 * scale)" } ?? ""
        }
        return
            ([columns.joined(separator: ",")]
            + records.map { record in columns.map { value(record, $0) }.joined(separator: ",") })
            .joined(separator: "\n") + "\n"
    }

    /// The student as `best.safetensors`, the model of the best validation epoch.
    func saveBest(student: any ImageClassifier, description: ModelDescription, epoch: Int) throws {
        try onLeader("write best.safetensors (epoch \(epoch + 1))", among: layout.group) {
            try ModelFile.save(student, description: description, to: file("best.safetensors"))
        }
    }

    func saveCheckpoint(
        modules: StudentAndHelpers, description: ModelDescription, optimizer: OptimizerCheckpoint, state: TrainingState,
        keep: Int
    ) throws {
        try onLeader("write the checkpoint of step \(state.step)", among: layout.group) {
            _ = try Checkpoints.save(
                modules: modules, description: description, optimizer: optimizer, state: state, output: path, keep: keep
            )
        }
    }

    /// The student alone as `model.safetensors`, and `summary.json`.
    func finish(student: any ImageClassifier, description: ModelDescription, summary: RunSummary) throws {
        try onLeader("write model.safetensors and summary.json", among: layout.group) {
            try ModelFile.save(student, description: description, to: file("model.safetensors"))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            try writeAtomically(try encoder.encode(summary) + Data("\n".utf8), to: file("summary.json"))
        }
    }

    /// What a user can do after training stopped on an error.
    var recoveryAdvice: String {
        Checkpoints.complete(in: path).first.map {
            "the last complete checkpoint, \($0.path), is intact; resume from it with --resume (after lowering --lr)"
        }
            ?? "no checkpoint was written yet"
    }

    /// Runs `body` on rank 0 of `communicator` only and tells the others whether it worked.
    private func onLeader(_ what: String, among communicator: Communicator, _ body: () throws -> Void) throws {
        var failure: Error?
        var status = [0]
        if communicator.rank == 0 {
            do { try body() } catch {
                failure = error
                status[0] = 1
            }
        }
        try communicator.broadcast(&status, root: 0, context: what)
        if let failure { throw failure }
        if status[0] != 0 { throw UserError("rank 0 could not \(what); its message above says why") }
    }

    /// Rank 0's state on every rank of the job (teacher ranks need the step), as JSON.
    private func broadcast(_ state: TrainingState) throws -> TrainingState {
        let world = layout.world
        guard world.size > 1 else { return state }
        var bytes = world.rank == 0 ? Array(try JSONEncoder().encode(state)) : []
        var length = [bytes.count]
        try world.broadcast(&length, root: 0, context: "training state length")
        if world.rank != 0 { bytes = [UInt8](repeating: 0, count: length[0]) }
        try world.broadcast(&bytes, root: 0, context: "training state")
        return try JSONDecoder().decode(TrainingState.self, from: Data(bytes))
    }
}
