import Cluster
import Data
import Distill
import Foundation
import Layers
import ModelFiles
import Models
import Settings
import Tensors

/// Everything one training run is made of, built from a config and the MPI world: the data
/// (the config's transforms, the validation split held out, each rank's batches), the student
/// with its method's helpers, the frozen teacher, the optimizer together with its gradient
/// averaging, the schedule and the evaluator. `sfkd train`, `sfkd bench step` and the tests
/// build runs this way only, so a benchmark times what users train.
public final class TrainingSetup {
    /// The config as the run uses it: with no optimizer given, the student family's recipe
    /// filled in (`recipe`), so config.yaml records what ran.
    public let config: TrainingConfig
    public let recipe: StudentRecipe?
    public let layout: JobLayout
    public let splits: DatasetSplits
    public let description: ModelDescription
    public let modules: StudentAndHelpers
    public let method: any DistillationMethod
    /// The frozen teacher, when the method distils from one.
    public let teacher: (any ImageClassifier)?
    public let optimizer: ReplicaOptimizer
    public let schedule: any LearningRateSchedule
    public let stepsPerEpoch: Int
    public let totalSteps: Int
    let data: TrainingData

    public var student: any ImageClassifier { modules.student }

    /// Checks the config, then builds the run. `splits` replaces the config's dataset, `method`
    /// its method and `teacher` its teacher file (tests and benchmarks inject them).
    public init(
        config: TrainingConfig, world: Communicator = .world, splits given: DatasetSplits? = nil,
        method: (any DistillationMethod)? = nil, teacher: (any ImageClassifier)? = nil
    ) throws {
        try config.validate(teacherGiven: teacher != nil)
        var config = config
        layout = try JobLayout(world: world, teacherRanks: config.teacherRanks, batchSize: config.batchSize)
        if let threads = config.threads { Threads.configure(threads) }
        GlobalRandom.seed(UInt64(config.seed))
        let splits = try config.prepare(
            given
                ?? DatasetRegistry.load(
                    config.dataset, directory: config.dataDirectory, folder: try config.folderOptions))
        self.splits = splits
        stepsPerEpoch = splits.train.count / config.batchSize
        totalSteps = try config.totalSteps(
            stepsPerEpoch: stepsPerEpoch, splits: splits, studentRanks: layout.studentRanks)
        try config.checkBatchesFit(imageShape: splits.shape, studentRanks: layout.studentRanks)
        recipe = config.studentRecipe
        config = config.withStudentRecipe(runEpochs: Double(totalSteps) / Double(stepsPerEpoch))
        self.config = config

        let arguments = try ModelArguments(config.modelArguments)
        let student = try ModelRegistry.make(
            config.model, inputShape: splits.shape, classes: splits.classes, seed: UInt64(config.seed),
            arguments: arguments)
        if let initialization = config.initialization {
            try WeightInitialization.apply(
                to: student, from: initialization, resetHead: config.resetHead, arguments: arguments,
                inputShape: splits.shape)
        }
        var description = ModelDescription(
            architecture: config.model, arguments: arguments, dataset: splits.name, classes: splits.classes,
            inputShape: splits.shape, mean: splits.mean, std: splits.std)
        description.classNames = splits.train.classNames
        self.description = description

        let methodType = try config.methodType
        self.teacher = methodType.needsTeacher ? try teacher ?? Self.openTeacher(config.teacher!, for: splits) : nil
        let context = MethodContext(
            settings: config.distillation, studentTaps: ModelRegistry.describeTaps(student, inputShape: splits.shape),
            teacherTaps: self.teacher.map { ModelRegistry.describeTaps($0, inputShape: splits.shape) } ?? [],
            classes: splits.classes, seed: UInt64(config.seed), labelSmoothing: Float(config.labelSmoothing),
            stepsPerEpoch: stepsPerEpoch, totalSteps: totalSteps)
        self.method = try method ?? methodType.init(context: context)
        modules = StudentAndHelpers(student: student, helpers: self.method.helpers)
        // Weights, gradients and up to two optimizer moments per parameter, before any is allocated.
        let trainingBytes = 16 * Double(modules.parameterCount)
        guard trainingBytes <= Double(MachineMemory.bytes) else {
            throw UserError(
                "config: training \(config.model) (\(modules.parameterCount) parameters with the method's helpers) needs about "
                    + "\(Int(trainingBytes / 1e9)) GB for weights, gradients and optimizer state; this machine has "
                    + "\(MachineMemory.bytes / 1_000_000_000) GB")
        }
        optimizer =
            layout.isStudent
            ? config.makeOptimizer(for: modules, rank: layout.group.rank, ranks: layout.studentRanks)
            : config.makeOptimizer(for: modules)
        schedule = config.makeSchedule(stepsPerEpoch: stepsPerEpoch, totalSteps: totalSteps)
        data = TrainingData(
            splits: splits, augmentation: config.augmentation(default: splits.defaultAugmentation),
            seed: UInt64(config.seed),
            globalBatch: config.batchSize, studentRanks: layout.studentRanks, stepsPerEpoch: stepsPerEpoch,
            totalSteps: totalSteps, loaderThreads: config.loaderThreads, mixup: config.mixupSettings)
    }

    /// The frozen teacher of `path`, checked against the run's dataset.
    static func openTeacher(_ path: String, for splits: DatasetSplits) throws -> any ImageClassifier {
        let (teacher, teacherDescription, file) = try ModelFile.open(path)
        guard teacherDescription.dataset == splits.name else {
            throw UserError(
                "teacher \(file) was trained on '\(teacherDescription.dataset)'; this run uses '\(splits.name)' (a teacher must be trained, or imported with sfkd import --dataset, for this run's dataset)"
            )
        }
        try teacherDescription.checkCompatible(with: splits, path: file)
        return teacher
    }

    /// The student replicas of the student ranks (a collective over them: every student rank
    /// calls it): they agree on the model and start from rank 0's state.
    public func makeReplicas() throws -> ReplicaGroup {
        try ReplicaGroup(
            modules: modules, optimizer: optimizer, communicator: layout.group, bucketMegabytes: config.bucketMegabytes,
            overlap: config.overlap, syncBatchNorm: config.syncBatchNorm,
            wire: config.gradientSync == .bf16 ? .bfloat16 : .float32)
    }

    /// The optimizer step over `replicas`, with the teacher's outputs from this rank's teacher
    /// rank over `teacherLink` (from `firstStep` on) or from the teacher inline.
    public func makeStep(replicas: ReplicaGroup, teacherLink: Communicator? = nil, firstStep: Int = 0) throws
        -> TrainingStep
    {
        TrainingStep(
            modules: modules, method: method, optimizer: optimizer.optimizer, replicas: replicas,
            teacher: try teacherSource(link: teacherLink, firstStep: firstStep),
            clipNorm: config.clipGradientNorm.map(Float.init), precision: config.precision)
    }

    /// Where the step's teacher outputs come from: a teacher rank, the teacher inline, or nowhere.
    private func teacherSource(link: Communicator?, firstStep: Int) throws -> (any TeacherSource)? {
        guard let teacher else { return nil }
        guard let link else { return inlineTeacher(teacher) }
        return try OffloadedTeacher(
            link: link, teacherRank: layout.teacherRank(serving: layout.group.rank), layout: teacherMessages,
            localBatch: layout.localBatchSize, firstStep: firstStep, totalSteps: totalSteps)
    }

    /// A teacher rank's whole run: serve its students' steps from `firstStep` on.
    func serveTeacherOutputs(link: Communicator, fromStep firstStep: Int) throws {
        guard let teacher else { return }
        try TeacherServer(
            link: link, teacher: inlineTeacher(teacher),
            layout: teacherMessages, data: data, students: layout.servedStudents
        )
        .serve(fromStep: firstStep)
    }

    private func inlineTeacher(_ teacher: any ImageClassifier) -> InlineTeacher {
        InlineTeacher(model: teacher, tapIndices: method.teacherTapIndices, precision: config.teacherPrecision)
    }

    private var teacherMessages: TeacherMessageLayout {
        TeacherMessageLayout(
            teacher: teacher!, inputShape: splits.shape, classes: splits.classes, tapIndices: method.teacherTapIndices)
    }

    /// This student rank's batches, step after step.
    public func batches(rank: Int) -> TrainingBatches { TrainingBatches(data, rank: rank) }

    /// Scores models on this run's validation and test splits over `replicas`.
    public func evaluator(_ replicas: ReplicaGroup) -> Evaluator {
        Evaluator(
            splits: splits, batchSize: config.evalBatchSize, loaderThreads: config.loaderThreads, replicas: replicas,
            studentPrecision: config.precision, teacherPrecision: config.teacherPrecision)
    }
}

extension TrainingConfig {
    /// The dataset as this run sees it: timm's transforms at `input_size`, the normalisation,
    /// the validation split held out; errors for settings the dataset cannot take.
    func prepare(_ loaded: DatasetSplits) throws -> DatasetSplits {
        var splits = loaded
        // With input_size, any dataset goes through timm's transforms (OFA's CIFAR-100 at 224).
        if let size = inputSize, splits.train.pipeline == nil { splits = splits.with(try pipeline(size: size)) }
        if normalization != .dataset {
            guard splits.shape[0] == 3 else {
                throw UserError(
                    "config: 'normalization: \(normalization.rawValue)' is for RGB images; '\(splits.name)' has \(splits.shape[0]) channel(s)"
                )
            }
            let imagenet = normalization == .imagenet
            splits = splits.normalized(
                mean: imagenet ? [0.485, 0.456, 0.406] : [0.5, 0.5, 0.5],
                std: imagenet ? [0.229, 0.224, 0.225] : [0.5, 0.5, 0.5])
        }
        if let valSplit {
            splits = splits.holdingOut(
                try ValidationSplit.count(for: valSplit, trainCount: splits.train.count, classes: splits.classes),
                seed: UInt64(valSeed ?? seed))
        }
        if splits.train.pipeline == nil, !changedPipelineKeys.isEmpty {
            throw UserError(
                "config: \(changedPipelineKeys.map { "'\($0)'" }.joined(separator: ", ")) set timm's transforms, which run with input_size; give --input-size (the dataset's own size is \(splits.shape[1]))"
            )
        }
        if splits.train.pipeline != nil, cropPadding != nil {
            throw UserError(
                "config: 'crop_padding' is the random crop at a dataset's own size; with input_size (or an image folder) the crop is RandomResizedCrop: set 'scale' and 'ratio' instead"
            )
        }
        return splits
    }

    /// The steps of the run (`steps`, or `epochs` of `stepsPerEpoch`), after the checks that
    /// need the dataset: a batch the training split can fill, and Mixup's even local batch.
    func totalSteps(stepsPerEpoch: Int, splits: DatasetSplits, studentRanks: Int) throws -> Int {
        guard stepsPerEpoch >= 1 else {
            throw UserError(
                "config: 'batch_size' \(batchSize) is larger than the \(splits.train.count) training images of '\(splits.name)'"
            )
        }
        if mixupSettings.isActive, (batchSize / studentRanks) % 2 != 0 {
            throw UserError(
                "config: Mixup/CutMix pair each sample with the one half a batch away on the same rank; 'batch_size' \(batchSize) over \(studentRanks) student rank(s) leaves an odd local batch: use a batch size divisible by \(2 * studentRanks)"
            )
        }
        let (epochSteps, overflow) = (epochs ?? 1).multipliedReportingOverflow(by: stepsPerEpoch)
        guard !overflow else {
            throw UserError(
                "config: 'epochs' \(epochs ?? 1) x \(stepsPerEpoch) steps per epoch is more steps than can be counted")
        }
        return steps ?? epochSteps
    }

    /// Refuses a batch whose images alone (float32, the local training batch or the evaluation
    /// batch) would not fit in memory: `batch_size` and `input_size` are user text whose product
    /// reaches an allocation.
    func checkBatchesFit(imageShape: [Int], studentRanks: Int) throws {
        let image = 4 * Double(imageShape.reduce(1, *))
        for (key, images) in [("batch_size", batchSize / studentRanks), ("eval_batch_size", evalBatchSize)] {
            let bytes = Double(images) * image
            guard bytes <= Double(MachineMemory.bytes) else {
                throw UserError(
                    "config: '\(key)' \(images) of \(imageShape.map(String.init).joined(separator: "x")) images needs "
                        + "\(Int(bytes / 1e9)) GB for one batch of float32 images alone; this machine has "
                        + "\(MachineMemory.bytes / 1_000_000_000) GB")
            }
        }
    }

    /// The crop and flip of a dataset at its own size: the dataset's defaults, then the config's.
    func augmentation(default defaults: Augmentation) -> Augmentation {
        var augmentation = defaults
        if let cropPadding { augmentation.cropPadding = cropPadding }
        if let horizontalFlip { augmentation.horizontalFlip = horizontalFlip }
        return augmentation
    }

    /// timm's Mixup / CutMix as the config sets them.
    var mixupSettings: Mixup {
        var mixup = Mixup()
        mixup.mixupAlpha = self.mixup
        mixup.cutmixAlpha = cutmix
        mixup.probability = mixupProbability
        mixup.switchProbability = mixupSwitchProbability
        mixup.labelSmoothing = labelSmoothing
        return mixup
    }
}
