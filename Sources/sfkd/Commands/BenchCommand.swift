import ArgumentParser
import Cluster
import Data
import Distill
import Foundation
import Models
import Settings
import Tensors
import Training

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that report speed next to a baseline measured in the same run.",
        subcommands: [OpsBenchCommand.self, StepBenchCommand.self, AllreduceBenchCommand.self, DataBenchCommand.self]
    )
}

struct DataBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract:
            "Images per second through an image folder's input pipeline (read, decode, timm's transforms, the loader's threads), rounds alternated."
    )

    @Option(name: .customLong("data-dir"), help: SettingFlags.help("data_dir")) var dataDirectory: String
    @Option(name: .customLong("input-size"), help: SettingFlags.help("input_size")) var inputSize = "224"
    @Option(help: "Images per round (the first of the train split).") var images: Int = 256
    @Option(name: .customLong("loader-threads"), help: SettingFlags.help("loader_threads")) var loaderThreads = "1"
    @Option(help: "Rounds (medians are reported).") var rounds: Int = 3
    @Flag(help: "Evaluation transforms (resize, centre crop) instead of training ones.") var eval = false
    @Option(help: SettingFlags.help("aa")) var aa: String?
    @Option(name: .long, help: SettingFlags.help("threads")) var threads = "1"
    @Flag(name: .long, help: "Print one JSON object on stdout.") var json = false

    func validate() throws {
        guard images >= 1, rounds >= 1 else { throw ValidationError("--images and --rounds must be at least 1") }
    }

    func run() throws {
        let settings = try SettingFlags.config([
            ("data_dir", dataDirectory), ("input_size", inputSize), ("loader_threads", loaderThreads), ("aa", aa),
            ("threads", threads),
        ])
        Threads.configure(settings.threads ?? 1)
        var benchmark = DataBenchmark(
            directory: dataDirectory, inputSize: settings.inputSize ?? 224, images: images,
            loaderThreads: settings.loaderThreads,
            rounds: rounds, training: !eval)
        benchmark.randAugment = try settings.autoAugment.map { try RandAugment($0) }
        let result = try benchmark.run(progress: json ? { _ in } : report)
        if json { try printJSON(result) }
    }
}

struct OpsBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops",
        abstract: "sgemm, conv2d, attention and elementwise kernels against sgemm and memory-copy baselines."
    )

    @Option(name: .long, help: SettingFlags.help("threads")) var threads = "1"

    @Option(name: .long, help: "Timed repetitions per measurement (the median is reported).")
    var repeats: Int = 7

    @Option(
        name: .long,
        help:
            "Measure only these parts (repeatable): \(OpsBenchmark.Part.allCases.map(\.rawValue).joined(separator: ", ")). The sgemm baseline always runs."
    )
    var only: [OpsBenchmark.Part] = []

    @Flag(name: .long, help: "Print one JSON object on stdout.")
    var json = false

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1, got \(repeats)") }
    }

    func run() throws {
        Threads.configure(try SettingFlags.config([("threads", threads)]).threads ?? 1)
        var benchmark = OpsBenchmark(repeats: repeats)
        if !only.isEmpty { benchmark.parts = Set(only) }
        let results = benchmark.run(progress: json ? { _ in } : report)
        if json { try printJSON(results) }
    }
}

struct StepBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step",
        abstract:
            "Images/s of a full training step (forward, backward, SGD momentum) on random 3x32x32 input, 10 classes; median and peak RSS."
    )

    @Option(help: SettingFlags.help("model")) var model: String
    @Option(name: .customLong("model-args"), help: SettingFlags.help("model_args")) var modelArgs: String = ""
    @Option(
        name: .customLong("batch-size"),
        help: SettingFlags.help("batch_size", "In bench step: each rank's batch (weak scaling under mpirun)."))
    var batchSize = "64"
    @Option(help: SettingFlags.help("threads")) var threads = "1"
    @Option(help: "Timed steps (the median is reported).") var steps: Int = 20
    @Option(help: "Untimed steps first.") var warmup: Int = 3
    @Option(
        name: .customLong("teacher-model"),
        help: "Time a distillation step from this (randomly initialised, frozen) registry teacher.") var teacherModel:
        String?
    @Option(
        help:
            "Distillation method(s) with --teacher-model, timed alternately (repeatable): \(MethodRegistry.names.joined(separator: ", "))."
    ) var method: [String] = []
    @Option(name: .customLong("kd-stages"), parsing: .unconditional, help: SettingFlags.help("kd_stages"))
    var kdStages: String = "-2,-1"
    @Option(name: .customLong("bucket-mb"), help: SettingFlags.help("bucket_mb")) var bucketMB = "8"
    @Flag(name: .customLong("no-overlap"), help: SettingFlags.help("overlap", "This flag turns it off."))
    var noOverlap = false
    @Option(name: .customLong("grad-sync"), help: SettingFlags.help("grad_sync")) var gradSync: String = "allreduce"
    @Option(
        help: SettingFlags.help(
            "precision", "Repeatable: each method is timed at each precision, alternately (default fp32).")
    ) var precision: [String] = []
    @Option(
        name: .customLong("teacher-precision"),
        help: SettingFlags.help("teacher_precision", "Default: the student's precision of each timed step."))
    var teacherPrecision: String?
    @Option(help: "Under mpirun: alternating rounds of steps with and without gradient averaging.") var rounds: Int = 3
    @Option(name: .customLong("input-size"), help: "Side of the random images (one rank).") var inputSize: Int = 32
    @Option(help: "Class count (one rank).") var classes: Int = 10
    @Flag(
        help:
            "After the timed steps, as many again with the time per op family (GEMM, convolution, attention, normalisation, elementwise, reductions, copies, optimizer, autograd bookkeeping)."
    ) var profile = false
    @Flag(help: "Print one JSON object on stdout.") var json = false

    /// The settings `sfkd train` would run with, read through its settings table (one type,
    /// range and error per key), with SGD at lr 0.01 (stable over many steps on random data).
    func trainingConfig() throws -> TrainingConfig {
        try SettingFlags.config([
            ("model", model), ("model_args", modelArgs), ("batch_size", batchSize), ("threads", threads),
            ("kd_stages", kdStages), ("bucket_mb", bucketMB), ("overlap", "\(!noOverlap)"),
            ("grad_sync", gradSync), ("precision", precision.first ?? "fp32"),
            ("teacher_precision", teacherPrecision ?? precision.first ?? "fp32"),
            ("lr", "0.01"), ("optimizer", "sgd"),
        ])
    }

    func validate() throws {
        // The shared flags are checked by the settings table (trainingConfig); these are the benchmark's own.
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
        guard steps >= 1, warmup >= 0 else {
            throw ValidationError("--steps must be at least 1 and --warmup at least 0")
        }
    }

    /// The op-family table of `--profile`, largest first.
    func reportProfile(_ rows: [StepBenchmark.FamilyTime], indent: String) {
        let total = rows.map { $0.forwardMilliseconds + $0.backwardMilliseconds }.reduce(0, +)
        report(
            "\(indent)time per step by op family (\(steps) profiled steps after the timed ones; forward / backward / share):"
        )
        for row in rows {
            let both = row.forwardMilliseconds + row.backwardMilliseconds
            report(
                "\(indent)  \(row.family.padding(toLength: 48, withPad: " ", startingAt: 0)) \(formatted(row.forwardMilliseconds, 2).leftPadded(9)) ms \(formatted(row.backwardMilliseconds, 2).leftPadded(9)) ms \(formatted(100 * both / max(total, 1e-9), 1).leftPadded(6))%"
            )
        }
    }

    /// ", student bf16, teacher fp32 (bf16 native)"; empty at float32.
    private func precisionText(_ config: TrainingConfig) -> String {
        guard precision.count <= 1 else { return ", bf16 \(BFloat16Arithmetic.effective.rawValue)" }
        guard config.precision == .bfloat16 || config.teacherPrecision == .bfloat16 else { return "" }
        let teacher = teacherModel == nil ? "" : ", teacher \(config.teacherPrecision.rawValue)"
        return ", student \(config.precision.rawValue)\(teacher) (bf16 \(BFloat16Arithmetic.effective.rawValue))"
    }

    func run() throws {
        let config = try trainingConfig()
        Threads.configure(config.threads ?? 1)
        if MPIProcess.worldSize > 1 {
            guard teacherModel == nil else {
                throw ValidationError(
                    "under mpirun, bench step times the data-parallel student step; time distillation methods on one rank"
                )
            }
            return try runDataParallel()
        }
        for name in method { _ = try MethodRegistry.method(named: name) }
        if !method.isEmpty && teacherModel == nil { throw ValidationError("--method needs --teacher-model NAME") }
        var benchmark = StepBenchmark(config: config, steps: steps, warmup: warmup)
        // Each precision through the settings table: one message for a misspelt value.
        benchmark.precisions = try precision.map { try SettingFlags.config([("precision", $0)]).precision }
        benchmark.teacherPrecision = teacherPrecision == nil ? nil : config.teacherPrecision
        benchmark.teacherModel = teacherModel
        benchmark.profile = profile
        guard (8...4096).contains(inputSize), (2...100_000).contains(classes) else {
            throw ValidationError("--input-size must be in 8...4096 and --classes in 2...100000")
        }
        benchmark.inputSize = inputSize
        benchmark.classes = classes
        if teacherModel != nil { benchmark.methods = method.isEmpty ? [KD.name] : method }
        let result = try benchmark.run()
        if json {
            try printJSON(result)
        } else if let perMethod = result.methods {
            report(
                "\(teacherModel.map { "\($0) -> " } ?? "")\(model), batch \(config.batchSize), \(config.threads ?? 1) thread(s)\(precisionText(config)), \(teacherModel == nil ? "steps" : "full distillation steps") timed alternately:"
            )
            report("  best dense rates at 1024^3, timed after every step: \(result.denseRate.summary)")
            for entry in perMethod {
                let label = precision.count > 1 ? "\(entry.method) \(entry.precision.rawValue)" : entry.method
                report(
                    "  \(label.padding(toLength: 10, withPad: " ", startingAt: 0)) \(formatted(entry.imagesPerSecond)) images/s, median step \(formatted(entry.medianStepMilliseconds, 1)) ms = \(formatted(entry.versusFirst, 2))x the first's (paired per step: \(formatted(entry.versusFirstPaired, 2))x), \(entry.helperParameters) helper parameters"
                )
                let p = entry.phases
                report(
                    "          forward \(formatted(p.forward)) ms, teacher \(formatted(p.teacher)) ms, loss (method and helpers) \(formatted(p.loss)) ms, backward \(formatted(p.backward)) ms, optimizer \(formatted(p.optimizer)) ms"
                )
                report(
                    "          model FLOPs \(formatted(entry.modelGFLOPPerStep, 2)) GFLOP per step\(teacherModel == nil ? "" : " (teacher forward included)"): \(formatted(entry.achievedGFLOPS)) GFLOP/s = \(formatted(100 * entry.utilisation, 0))% of the best \(entry.precision.rawValue) dense rate, \(formatted(result.denseRate.rate(for: entry.precision))) GFLOP/s"
                )
                if let profile = entry.profile { reportProfile(profile, indent: "          ") }
            }
        } else {
            report(
                "\(model) (\(result.parameters) parameters), batch \(config.batchSize), \(config.threads ?? 1) thread(s)\(precisionText(config)): \(formatted(result.imagesPerSecond)) images/s (median step \(formatted(result.medianStepMilliseconds, 2)) ms), peak RSS \(formatted(result.peakResidentMegabytes)) MB"
            )
            report(
                "  model FLOPs \(formatted(result.modelGFLOPPerStep, 2)) GFLOP per step: \(formatted(result.achievedGFLOPS)) GFLOP/s = \(formatted(100 * result.utilisation, 0))% of the best dense rate, \(result.denseRate.summary), timed after every step"
            )
            if let profile = result.profile { reportProfile(profile, indent: "  ") }
        }
    }
}

extension StepBenchCommand {
    /// Weak scaling under mpirun: `--batch-size` images per rank.
    func runDataParallel() throws {
        let config = try trainingConfig()
        let benchmark = DataParallelStepBenchmark(
            config: config, steps: steps, warmup: warmup, rounds: rounds)
        let result = try benchmark.run()
        guard MPIProcess.worldRank == 0 else { return }
        if json {
            try printJSON(result)
            return
        }
        report(
            "\(model), \(result.ranks) ranks x batch \(config.batchSize), \(config.threads ?? 1) thread(s) each, overlap \(noOverlap ? "off" : "on"), \(result.buckets) bucket(s) of up to \(formatted(config.bucketMegabytes, 1)) MiB; \(result.steps) steps with averaging alternating with as many without:"
        )
        report(
            "  with gradient averaging:    \(formatted(result.imagesPerSecond)) images/s in all (median step \(formatted(result.medianStepMilliseconds, 1)) ms); allreduce \(formatted(result.allreduceMilliseconds, 2)) ms per step, of which the step waited \(formatted(result.allreduceExposedMilliseconds, 2)) ms"
        )
        report(
            "  without (each rank alone):  \(formatted(result.localImagesPerSecondPerRank)) images/s per rank (median step \(formatted(result.localMedianStepMilliseconds, 1)) ms)"
        )
        report("  efficiency: \(formatted(result.efficiencyVersusLocal, 3))")
    }
}

struct AllreduceBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract:
            "Allreduce, reduce-scatter and all-gather time per message size through sfkd's Communicator (allreduce also directly), and the link's alpha and beta fitted to them (run under mpirun)."
    )

    @Option(name: .customLong("min-kb"), help: "Smallest message in KiB.") var minKB: Int = 4
    @Option(name: .customLong("max-mb"), help: "Largest message in MiB.") var maxMB: Int = 64
    @Option(help: "Timed repetitions per size and path (the median is reported).") var repeats: Int = 20
    @Flag(
        help:
            "Fit the ring model's alpha (seconds per message) and beta (seconds per byte) to every size and collective."
    ) var fit = false
    @Flag(help: "Print one JSON object on stdout (rank 0).") var json = false

    func validate() throws {
        guard minKB >= 1, maxMB >= 1, minKB <= maxMB * 1024 else {
            throw ValidationError("need 1 <= --min-kb <= 1024 * --max-mb")
        }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
    }

    func run() throws {
        let world = Communicator.world
        var sizes: [Int] = []
        var bytes = minKB * 1024
        while bytes <= maxMB << 20 {
            sizes.append(bytes)
            bytes *= 4
        }
        let result = try AllreduceBenchmark(communicator: world, sizesInBytes: sizes, repeats: repeats, fitsModel: fit)
            .run()
        guard world.rank == 0 else { return }
        if json {
            try printJSON(result)
            return
        }
        report(
            "collectives over \(world.size) rank(s), float sum in place, medians of \(repeats) timed in turn (verified: \(result.verified)):"
        )
        report("     size   allreduce ms (bus GB/s)   direct ms (bus GB/s)   reduce-scatter ms   all-gather ms")
        for row in result.sizes {
            let label = row.bytes >= 1 << 20 ? "\(row.bytes >> 20) MiB" : "\(row.bytes >> 10) KiB"
            let allreduce = "\(formatted(row.communicatorSeconds * 1e3, 3)) (\(formatted(row.communicatorBusGBPS, 2)))"
            let direct = "\(formatted(row.directSeconds * 1e3, 3)) (\(formatted(row.directBusGBPS, 2)))"
            report(
                "\(label.padding(toLength: 9, withPad: " ", startingAt: 0))   \(allreduce.padding(toLength: 23, withPad: " ", startingAt: 0))   \(direct.padding(toLength: 20, withPad: " ", startingAt: 0))   \(formatted(row.reduceScatterSeconds * 1e3, 3).padding(toLength: 17, withPad: " ", startingAt: 0))   \(formatted(row.allgatherSeconds * 1e3, 3))"
            )
        }
        if let fit = result.fit {
            report(
                "ring model fit: alpha \(formatted(fit.alpha * 1e6, 2)) us per message, beta \(String(format: "%.3g", fit.beta)) s/byte (\(formatted(1e-9 / max(fit.beta, 1e-30), 2)) GB/s); median relative error \(formatted(100 * fit.medianRelativeError, 1))%"
            )
        }
        if !result.verified { throw UserError("allreduce verification failed: a reduced value was wrong") }
    }
}

private extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
