import Foundation
import Layers
import ModelFiles
import Models
import Settings
import Tensors

/// Where a run is, beyond its tensors: enough to continue bit for bit.
public struct TrainingState: Codable, Equatable, Sendable {
    /// Optimizer steps completed.
    public var step: Int
    /// The process-wide generator (dropout), as its two state words.
    public var random: [UInt64]
    public var trainedSeconds: Double
    public var trainedImages: Int
    /// `FileFormat.version` when written (absent in files of version 1 written before it existed).
    public var formatVersion: Int? = FileFormat.version
    /// The best validation epoch so far (absent without a validation split, and in older files).
    public var best: BestEpoch?

    enum CodingKeys: String, CodingKey {
        case step, random, trainedSeconds, trainedImages, best
        case formatVersion = "format_version"
    }
}

/// The optimizer's part of a checkpoint: its state tensors under the unsharded names, and its step count.
public struct OptimizerCheckpoint {
    public var stepCount: Int
    public var tensors: [(String, Tensor)]

    public init(stepCount: Int, tensors: [(String, Tensor)]) {
        self.stepCount = stepCount
        self.tensors = tensors
    }
}

/// `checkpoints/step-N/` folders: `model.safetensors` (parameters and buffers),
/// `optimizer.safetensors` (its state tensors), `state.json`, and a `DONE` marker written
/// last. A folder without `DONE` is never resumed from.
public enum Checkpoints {
    public static func folder(in output: String) -> String {
        (output as NSString).appendingPathComponent("checkpoints")
    }

    /// Writes `checkpoints/step-N/` for the student and helpers in `modules`, `DONE` last, then
    /// prunes to the newest `keep` complete checkpoints.
    public static func save(
        modules: StudentAndHelpers, description: ModelDescription, optimizer: OptimizerCheckpoint,
        state: TrainingState, output: String, keep: Int
    ) throws -> String {
        let root = folder(in: output)
        let path = (root as NSString).appendingPathComponent("step-\(state.step)")
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try ModelFile.save(
            modules.student, description: description,
            to: (path as NSString).appendingPathComponent("model.safetensors"))
        try SafeTensors.write(
            optimizer.tensors + modules.helperState, metadata: ["step_count": String(optimizer.stepCount)],
            to: (path as NSString).appendingPathComponent("optimizer.safetensors"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try writeAtomically(try encoder.encode(state), to: (path as NSString).appendingPathComponent("state.json"))
        try writeAtomically(Data("step \(state.step)\n".utf8), to: (path as NSString).appendingPathComponent("DONE"))
        try prune(root: root, keep: keep)
        return path
    }

    /// Complete checkpoints, newest first.
    public static func complete(in output: String) -> [(path: String, step: Int)] {
        let root = folder(in: output)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.compactMap { name -> (String, Int)? in
            guard name.hasPrefix("step-"), let step = Int(name.dropFirst(5)) else { return nil }
            let path = (root as NSString).appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("DONE")) else {
                return nil
            }
            return (path, step)
        }.sorted { $0.1 > $1.1 }
    }

    /// Restores the student, its helpers and the optimizer, and returns the state.
    public static func load(_ path: String, modules: StudentAndHelpers, optimizer: any Optimizer) throws
        -> TrainingState
    {
        let modelFile = (path as NSString).appendingPathComponent("model.safetensors")
        let modelContents = try SafeTensors.read(modelFile)
        try FileFormat.check(
            modelContents.metadata[ModelDescription.formatVersionKey].flatMap { Int($0) }, file: modelFile)
        try ModelFile.load(modelContents, into: modules.student, path: modelFile)
        let optimizerFile = (path as NSString).appendingPathComponent("optimizer.safetensors")
        let optimizerContents = try SafeTensors.read(optimizerFile)
        guard let stepCount = optimizerContents.metadata["step_count"].flatMap(Int.init) else {
            throw UserError("\(optimizerFile): metadata field 'step_count' is missing")
        }
        do {
            try optimizer.restore(stepCount: stepCount, state: optimizerContents.tensors)
        } catch {
            throw UserError("\(optimizerFile): \(error) (was the checkpoint written with another --optimizer?)")
        }
        for (name, tensor) in modules.helperState {
            guard let saved = optimizerContents.tensors[name], saved.shape == tensor.shape else {
                throw UserError("\(optimizerFile): tensor '\(name)' \(tensor.shape) is missing or of another shape")
            }
            tensor.copyValues(from: saved)
        }
        let stateFile = (path as NSString).appendingPathComponent("state.json")
        guard let data = FileManager.default.contents(atPath: stateFile) else {
            throw UserError("\(stateFile) not found")
        }
        let state: TrainingState
        do {
            state = try JSONDecoder().decode(TrainingState.self, from: data)
        } catch {
            throw UserError("\(stateFile): not a valid training state (\(describeDecodingError(error)))")
        }
        try FileFormat.check(state.formatVersion, file: stateFile)
        guard state.random.count == 2, state.step >= 0 else {
            throw UserError(
                "\(stateFile): field 'random' must hold 2 words and 'step' be at least 0; found \(state.random.count) words, step \(state.step)"
            )
        }
        return state
    }

    /// Keeps the newest `keep` complete checkpoints and removes incomplete leftovers.
    private static func prune(root: String, keep: Int) throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        let steps = names.compactMap { name -> (String, Int, Bool)? in
            guard name.hasPrefix("step-"), let step = Int(name.dropFirst(5)) else { return nil }
            let path = (root as NSString).appendingPathComponent(name)
            return (
                path, step, FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("DONE"))
            )
        }.sorted { $0.1 > $1.1 }
        var kept = 0
        for (path, _, done) in steps {
            if done && kept < keep {
                kept += 1
                continue
            }
            // DONE first: a kill during the removal must not leave a "complete" folder without its files.
            try? FileManager.default.removeItem(atPath: (path as NSString).appendingPathComponent("DONE"))
            try? FileManager.default.removeItem(atPath: path)
        }
    }
}
