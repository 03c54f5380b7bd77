import Foundation
import Settings
import Tensors

/// What `--resume` may change. Paths, logging, threads and communication settings may differ
/// from the saved run (and between ranks); every other key changes the trajectory, so a
/// difference is refused unless named in `--allow-change`, with what the change means.
extension TrainingConfig {
    /// Keys that do not change what is computed: they may differ at resume and between ranks.
    public static let placementKeys: Set<String> = [
        "out", "data_dir", "val_dir", "skip_bad_images", "loader_threads", "teacher", "init", "threads", "log_every",
        "checkpoint_every", "checkpoint_minutes", "keep_checkpoints", "divergence_factor",
        "comm_timeout", "bucket_mb", "overlap", "teacher_ranks", "eval_batch_size", "teacher_eval",
    ]

    /// What a change of a trajectory key at resume means, for the keys where it is a common wish.
    static let changeMeaning: [String: String] = [
        "epochs":
            "the schedule is recomputed for the new length, so the learning rate from this step on differs from the saved run's",
        "steps":
            "the schedule is recomputed for the new length, so the learning rate from this step on differs from the saved run's",
        "lr": "the learning rate changes from this step on",
        "batch_size":
            "the epoch's batches are cut differently, so samples of the current epoch are skipped or repeated",
        "dataset": "training continues on other data",
        "seed": "the data order and augmentation of the coming epochs change",
        "precision": "the student's products round differently from this step on",
        "teacher_precision": "the teacher's outputs differ slightly from this step on",
    ]

    /// The resolved config as "key: value" lines without the placement keys: what every rank
    /// must agree on. The model is left to the replicas' tensor signature check, which names
    /// the first differing tensor.
    var trajectoryLines: [String] {
        trajectoryKeys.filter { $0.spec.name != "model" }.map { "\($0.spec.name): \($0.get(self).text)" }
    }

    /// The keys that decide what is computed: every training key but the placement ones, and
    /// the settings of the selected method only (a KD run does not depend on `dwt_levels`).
    var trajectoryKeys: [ConfigKey] {
        let read = Set(((try? methodType)?.settings ?? []).map(\.name))
        return Self.keys.filter { key in
            !Self.placementKeys.contains(key.spec.name)
                && (!Self.methodSettingNames.contains(key.spec.name) || read.contains(key.spec.name))
        }
    }

    /// Refuses a resume whose config differs from the saved one in a trajectory key not in
    /// `allowed`; returns notes for the allowed changes.
    func checkResume(against saved: TrainingConfig, allowed: Set<String>, folder: String) throws -> [String] {
        var refused: [String] = [], notes: [String] = []
        // The saved method's settings count too: a changed method is refused as 'method' anyway.
        let savedKeys = Set(saved.trajectoryKeys.map(\.spec.name))
        for key in Self.keys
        where savedKeys.contains(key.spec.name) || trajectoryKeys.contains(where: { $0.spec.name == key.spec.name }) {
            let before = key.get(saved), now = key.get(self)
            guard before != now else { continue }
            let name = key.spec.name
            let change = "\(name): \(before.text) -> \(now.text)"
            if name == "grad_sync", Set([saved.gradientSync, gradientSync]).isSubset(of: [.allreduce, .zero1]) {
                // The same average and update, sharded or not; the checkpoint holds the full state either way.
                notes.append("\(change) (the same update, sharded or not)")
            } else if allowed.contains(name) {
                notes.append(
                    "\(change) (allowed: \(Self.changeMeaning[name] ?? "the run no longer follows the saved trajectory"))"
                )
            } else {
                refused.append(change)
            }
        }
        guard refused.isEmpty else {
            throw UserError(
                "--resume: the settings differ from the run saved in \(folder)/config.yaml: \(refused.joined(separator: "; ")); resume with the saved settings, or pass --allow-change \(refused.map { String($0.prefix { $0 != ":" }) }.joined(separator: ",")) to continue with the new ones"
            )
        }
        return notes
    }
}
