import Tensors

/// What `summary.json` holds, and what `Trainer.run` returns.
public struct RunSummary: Codable, Equatable, Sendable {
    public var model: String
    public var dataset: String
    public var method: String?
    public var parameters: Int
    public var testTop1: Double
    public var testTop5: Double
    public var testLoss: Double
    public var imagesPerSecond: Double
    public var steps: Int
    public var epochs: Double
    public var wallSeconds: Double
    public var threads: Int
    public var ranks: Int
    public var studentRanks: Int
    public var teacherRanks: Int
    /// Image files that did not decode and were skipped (`--skip-bad-images`), over every rank.
    public var badImages: Int?
    /// The last evaluation on the validation split (`val_split`), when there is one.
    public var valTop1: Double?
    public var valTop5: Double?
    public var valLoss: Double?
    /// The epoch of the best validation top-1 and its scores (`best.safetensors`); nil without
    /// a validation split, since the best is never chosen on test.
    public var best: BestEpoch?
    /// What the run was: its seed, a hash of its trajectory settings (equal for runs that
    /// should train alike), the sfkd version, the images of each split, the method's trainable
    /// helpers (the "extra parameters" papers report) and the teacher's own scores.
    public var seed: Int = 0
    public var configHash: String = ""
    public var version: String = ""
    public var trainImages: Int = 0
    public var valImages: Int?
    public var testImages: Int = 0
    public var helperParameters: Int = 0
    public var teacher: TeacherRecord?
    /// The job's restarts after failures (`launch/sfkd-mpirun --max-restarts`), oldest first.
    public var restarts: [RestartRecord]?

    enum CodingKeys: String, CodingKey {
        case model, dataset, method, parameters, steps, epochs, threads, ranks, best, seed, version, teacher,
            restarts, badImages = "bad_images"
        case testTop1 = "test_top1", testTop5 = "test_top5", testLoss = "test_loss", imagesPerSecond = "images_per_sec"
        case valTop1 = "val_top1", valTop5 = "val_top5", valLoss = "val_loss"
        case wallSeconds = "wall_seconds", studentRanks = "student_ranks", teacherRanks = "teacher_ranks"
        case configHash = "config_hash", trainImages = "train_images", valImages = "val_images", testImages =
            "test_images"
        case helperParameters = "helper_parameters"
    }
}

/// The epoch whose validation top-1 was the highest so far, with its scores on both splits.
public struct BestEpoch: Codable, Equatable, Sendable {
    public var epoch: Int
    public var step: Int
    public var valTop1: Double, valTop5: Double, valLoss: Double
    public var testTop1: Double, testTop5: Double, testLoss: Double

    enum CodingKeys: String, CodingKey {
        case epoch, step
        case valTop1 = "val_top1", valTop5 = "val_top5", valLoss = "val_loss"
        case testTop1 = "test_top1", testTop5 = "test_top5", testLoss = "test_loss"
    }
}

/// The frozen teacher of a distillation run and its own scores on this run's splits.
public struct TeacherRecord: Codable, Equatable, Sendable {
    public var model: String
    public var parameters: Int
    public var valTop1: Double?
    public var testTop1: Double
    public var testTop5: Double

    enum CodingKeys: String, CodingKey {
        case model, parameters
        case valTop1 = "val_top1", testTop1 = "test_top1", testTop5 = "test_top5"
    }
}

extension RunSummary {
    /// Reads summary.json files of earlier sfkd versions too: what they did not record yet
    /// (the run record, validation, ranks) reads as absent or zero.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try c.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        model = try c.decode(String.self, forKey: .model)
        dataset = try c.decode(String.self, forKey: .dataset)
        testTop1 = try c.decode(Double.self, forKey: .testTop1)
        method = try c.decodeIfPresent(String.self, forKey: .method)
        parameters = try value(.parameters, 0)
        testTop5 = try value(.testTop5, 0)
        testLoss = try value(.testLoss, 0)
        imagesPerSecond = try value(.imagesPerSecond, 0)
        steps = try value(.steps, 0)
        epochs = try value(.epochs, 0)
        wallSeconds = try value(.wallSeconds, 0)
        threads = try value(.threads, 0)
        ranks = try value(.ranks, 1)
        studentRanks = try value(.studentRanks, 1)
        teacherRanks = try value(.teacherRanks, 0)
        badImages = try c.decodeIfPresent(Int.self, forKey: .badImages)
        valTop1 = try c.decodeIfPresent(Double.self, forKey: .valTop1)
        valTop5 = try c.decodeIfPresent(Double.self, forKey: .valTop5)
        valLoss = try c.decodeIfPresent(Double.self, forKey: .valLoss)
        best = try c.decodeIfPresent(BestEpoch.self, forKey: .best)
        seed = try value(.seed, 0)
        configHash = try value(.configHash, "")
        version = try value(.version, "")
        trainImages = try value(.trainImages, 0)
        valImages = try c.decodeIfPresent(Int.self, forKey: .valImages)
        testImages = try value(.testImages, 0)
        helperParameters = try value(.helperParameters, 0)
        teacher = try c.decodeIfPresent(TeacherRecord.self, forKey: .teacher)
        restarts = try c.decodeIfPresent([RestartRecord].self, forKey: .restarts)
    }
}

extension RunSummary {
    /// The summary of `setup`'s run at `state`, with the final scores and the teacher's own.
    init(
        _ setup: TrainingSetup, state: TrainingState, final: Scores, teacher: TeacherRecord?, wallSeconds: Double,
        badImages: Int?
    ) {
        let config = setup.config, layout = setup.layout, splits = setup.splits
        self.init(
            model: config.model, dataset: splits.name, method: setup.teacher == nil ? nil : type(of: setup.method).name,
            parameters: setup.student.parameterCount, testTop1: final.test.top1, testTop5: final.test.top5,
            testLoss: final.test.loss,
            imagesPerSecond: state.imagesPerSecond, steps: state.step,
            epochs: Double(state.step) / Double(setup.stepsPerEpoch),
            wallSeconds: wallSeconds, threads: Threads.count, ranks: layout.world.size,
            studentRanks: layout.studentRanks,
            teacherRanks: layout.teacherRanks)
        self.badImages = badImages
        valTop1 = final.validation?.top1
        valTop5 = final.validation?.top5
        valLoss = final.validation?.loss
        best = state.best
        seed = config.seed
        configHash = RunRecord.configHash(config)
        version = RunRecord.version
        trainImages = splits.train.count
        valImages = splits.validation?.count
        testImages = splits.test.count
        helperParameters = setup.modules.helperParameterCount
        self.teacher = teacher
    }
}
