import Cluster
import Data
import Distill
import Foundation
import Layers
import Models
import Tensors
import Training

/// `sfkd bench step`: the training step users run (`TrainingStep`: forward, teacher, loss,
/// backward, SGD with momentum) of a registry model on random 3 x S x S images (S = 32 unless --input-size) with 10 classes (--classes);
/// the median over the timed steps. With a teacher model and methods, a full distillation step
/// per method (teacher forward included); with several precisions, each method at each
/// (student and teacher at that precision unless the teacher's is fixed). All are timed
/// alternately, step after step, so their ratios are fair on a noisy host.
///
/// Model FLOP utilisation: the step's model FLOPs (`FLOPCounter`'s multiply-adds x 2 of one
/// forward pass of the student and helpers, tripled for forward + backward, plus the frozen
/// teacher's forward once) over the median step time, against the machine's best dense float32
/// rate: OpenBLAS's and oneDNN's 1024^3 sgemm, both timed after every step of the same run.
struct StepBenchmark {
    /// The run's settings (model, model_args, batch_size, optimizer, method settings...), as
    /// `sfkd train` takes them; the benchmark sets the method, the steps and the data.
    var config: TrainingConfig
    let steps: Int
    let warmup: Int
    var teacherModel: String?
    var methods: [String] = [CrossEntropyOnly.name]
    /// The student's precisions to time (the config's when empty).
    var precisions: [Precision] = []
    /// The teacher's precision: fixed, or (nil) the student's of each variant.
    var teacherPrecision: Precision?

    /// One timed step: a method at a precision.
    struct Variant {
        let method: String
        let precision: Precision
        let teacherPrecision: Precision
    }

    var variants: [Variant] {
        (precisions.isEmpty ? [config.precision] : precisions).flatMap { precision in
            methods.map { Variant(method: $0, precision: precision, teacherPrecision: teacherPrecision ?? precision) }
        }
    }
    /// Random 3 x size x size images for `classes` classes.
    var inputSize = 32
    var classes = 10
    /// After the timed steps, as many again with `OpProfile` on, for the time per op family.
    var profile = false

    /// Median milliseconds of each phase of the step.
    struct Phases: Encodable {
        let forward: Double, teacher: Double, loss: Double, backward: Double, reduce: Double, optimizer: Double
    }

    /// Milliseconds per step in one op family (or in the optimizer, the autograd bookkeeping,
    /// the glue between ops), forward and backward.
    struct FamilyTime: Encodable {
        let family: String
        let forwardMilliseconds: Double
        let backwardMilliseconds: Double

        enum CodingKeys: String, CodingKey {
            case family, forwardMilliseconds = "forward_ms", backwardMilliseconds = "backward_ms"
        }
    }

    struct MethodResult: Encodable {
        let method: String
        let precision: Precision
        let teacherPrecision: Precision
        let medianStepMilliseconds: Double
        let imagesPerSecond: Double
        let helperParameters: Int
        let versusFirst: Double
        /// Step i of every method runs back to back, so their ratio sees one machine state; its
        /// median is steadier than the ratio of medians on a noisy host.
        let versusFirstPaired: Double
        let phases: Phases
        /// Model FLOPs per step (x 1e9), the rate achieved, and its share of the run's best dense rate.
        let modelGFLOPPerStep: Double
        let achievedGFLOPS: Double
        let utilisation: Double
        let profile: [FamilyTime]?

        enum CodingKeys: String, CodingKey {
            case method, phases, profile, precision, teacherPrecision = "teacher_precision"
            case modelGFLOPPerStep = "model_gflop_per_step", achievedGFLOPS = "achieved_gflops", utilisation =
                "utilisation"
            case medianStepMilliseconds = "median_step_ms", imagesPerSecond = "images_per_sec", helperParameters =
                "helper_parameters"
            case versusFirst = "vs_first", versusFirstPaired = "vs_first_paired"
        }
    }

    struct Result: Encodable {
        let model: String
        let parameters: Int
        let precision: Precision
        let teacherPrecision: Precision
        /// How bfloat16 products ran ("native" or "emulated"), when any did.
        let bfloat16Arithmetic: String?
        let batchSize: Int
        let threads: Int
        let steps: Int
        let medianStepMilliseconds: Double
        let imagesPerSecond: Double
        let peakResidentMegabytes: Double
        /// The most tensor storage live at once, and what the buffer pool holds (live or free).
        let peakTensorMegabytes: Double
        let poolMegabytes: Double
        let teacherModel: String?
        let methods: [MethodResult]?
        let modelGFLOPPerStep: Double
        let achievedGFLOPS: Double
        let denseRate: DenseRate
        let utilisation: Double
        let profile: [FamilyTime]?
        /// The first method's median phases and the gradient bytes its replicas would average
        /// (student and helpers), what `launch/bench/project` models communication from.
        let phases: Phases
        let gradientBytes: Int
        /// Each trainable parameter (in the order of the gradient arena) with its bytes and the
        /// median fraction of backward that had passed when its gradient became final: where
        /// `launch/bench/project` starts each bucket's collective.
        let gradientReady: [GradientReady]

        enum CodingKeys: String, CodingKey {
            case model, parameters, threads, steps, methods, gradientReady = "gradient_ready", precision
            case teacherPrecision = "teacher_precision", bfloat16Arithmetic = "bf16_arithmetic"
            case batchSize = "batch_size", medianStepMilliseconds = "median_step_ms", imagesPerSecond = "images_per_sec"
            case peakResidentMegabytes = "peak_rss_mb", teacherModel = "teacher_model"
            case peakTensorMegabytes = "peak_tensor_mb", poolMegabytes = "pool_mb"
            case modelGFLOPPerStep = "model_gflop_per_step", achievedGFLOPS = "achieved_gflops", denseRate =
                "dense_rate", utilisation = "utilisation", profile
            case phases, gradientBytes = "gradient_bytes"
        }
    }

    struct GradientReady: Encodable {
        let bytes: Int
        let backwardFraction: Double

        enum CodingKeys: String, CodingKey {
            case bytes, backwardFraction = "backward_fraction"
        }
    }

    private func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

    /// Records when each trainable parameter's gradient becomes final during the timed steps
    /// (the moment GradientSync would count it towards its bucket).
    final class ReadyClock {
        let parameters: [Tensor]
        var times: [UInt64]
        var fractions: [[Double]]

        init(_ parameters: [Tensor]) {
            self.parameters = parameters
            times = [UInt64](repeating: 0, count: parameters.count)
            fractions = [[Double]](repeating: [], count: parameters.count)
            for (i, p) in parameters.enumerated() {
                ensure(p.gradientReadyHook == nil, "bench step: a gradient hook is already installed")
                p.gradientReadyHook = { [unowned self] _ in self.times[i] = DispatchTime.now().uptimeNanoseconds }
            }
        }

        /// After a step that started at `start` (ns) with these phases: each time as a fraction of backward.
        func record(stepStart start: UInt64, phases: StepPhases) {
            let backwardStart = Double(start) + (phases.forward + phases.teacher + phases.loss) * 1e9
            for i in parameters.indices where times[i] != 0 {
                fractions[i].append(min(1, max(0, (Double(times[i]) - backwardStart) / (phases.backward * 1e9))))
                times[i] = 0
            }
        }

        func detach() { for p in parameters { p.gradientReadyHook = nil } }
    }

    /// `steps` more steps with the op profile on: per step, each family's forward and backward
    /// time, then the optimizer (clipping and update), the autograd bookkeeping (backward time
    /// outside the ops' closures: accumulation, hooks) and the forward time between ops.
    private func profiled(_ trainingStep: TrainingStep, batch: Batch) throws -> [FamilyTime] {
        var phases = StepPhases()
        OpProfile.reset()
        OpProfile.isEnabled = true
        defer { OpProfile.isEnabled = false }
        for step in 0..<steps {
            OpProfile.restart()
            let result = try trainingStep.run(batch, step: warmup + steps + step, learningRate: 0.01)
            phases.forward += result.phases.forward + result.phases.teacher + result.phases.loss
            phases.backward += result.phases.backward
            phases.reduce += result.phases.reduce
            phases.optimizer += result.phases.optimizer
        }
        let perStep = 1e3 / Double(steps)
        let families = Set(OpProfile.forward.keys).union(OpProfile.backward.keys)
        var rows = families.map {
            FamilyTime(
                family: $0, forwardMilliseconds: (OpProfile.forward[$0] ?? 0) * perStep,
                backwardMilliseconds: (OpProfile.backward[$0] ?? 0) * perStep)
        }
        rows.sort {
            $0.forwardMilliseconds + $0.backwardMilliseconds > $1.forwardMilliseconds + $1.backwardMilliseconds
        }
        let inOpsForward = OpProfile.forward.values.reduce(0, +), inOpsBackward = OpProfile.backward.values.reduce(0, +)
        rows.append(
            FamilyTime(
                family: "between ops (forward glue, metrics)",
                forwardMilliseconds: max(0, phases.forward - inOpsForward) * perStep, backwardMilliseconds: 0))
        rows.append(
            FamilyTime(
                family: "autograd bookkeeping (accumulation, hooks)", forwardMilliseconds: 0,
                backwardMilliseconds: max(0, phases.backward - inOpsBackward) * perStep))
        rows.append(
            FamilyTime(
                family: "optimizer (clipping, update)", forwardMilliseconds: 0,
                backwardMilliseconds: (phases.optimizer + phases.reduce) * perStep))
        return rows
    }

    func run() throws -> Result {
        let shape = [3, inputSize, inputSize]
        let splits = randomImageSplits(shape: shape, classes: classes, count: config.batchSize)
        let teacher = try teacherModel.map { try ModelRegistry.make($0, inputShape: shape, classes: classes, seed: 3) }
        let variants = self.variants
        let setups = try variants.map { variant -> TrainingSetup in
            var config = self.config
            config.method = variant.method
            config.precision = variant.precision
            config.teacherPrecision = variant.teacherPrecision
            config.steps = warmup + 2 * steps + 1
            config.epochs = nil
            return try TrainingSetup(config: config, splits: splits, teacher: teacher)
        }
        let trainingSteps = try setups.map { setup -> TrainingStep in
            setup.modules.train()
            return try setup.makeStep(replicas: try setup.makeReplicas())
        }
        // Every method's run draws the same first batch: time them all on it.
        let batch = try setups[0].batches(rank: 0).batch(step: 0)
        let images = batch.images
        // Multiply-adds of one step's forward passes (the first warm-up step), the teacher's apart.
        let teacherMultiplyAdds =
            teacher.map { teacher in FLOPCounter.multiplyAdds { withNoGrad { _ = teacher.forward(images) } } } ?? 0
        var stepFLOPs: [Double] = []
        for (k, trainingStep) in trainingSteps.enumerated() {
            let counted = try FLOPCounter.multiplyAdds { _ = try trainingStep.run(batch, step: 0, learningRate: 0.01) }
            let teacherPart =
                try MethodRegistry.method(named: variants[k].method).needsTeacher ? teacherMultiplyAdds : 0
            stepFLOPs.append(2 * (3 * Double(counted - teacherPart) + Double(teacherPart)))
        }
        let readyClock = Communicator.world.size == 1 ? ReadyClock(trainingSteps[0].modules.trainableParameters) : nil
        defer { readyClock?.detach() }
        let gemm = SquareGEMM(size: 1024)
        // At bfloat16 the rate to compare with is the bfloat16 product's.
        let bfloat16 = variants.contains { $0.precision == .bfloat16 }
        var gemmSeconds: [[Double]] = [[], [], []]
        var seconds = [[Double]](repeating: [], count: trainingSteps.count)
        var phases = [[StepPhases]](repeating: [], count: trainingSteps.count)
        for step in 0..<(warmup + steps) {
            for (k, trainingStep) in trainingSteps.enumerated() {
                let start = DispatchTime.now().uptimeNanoseconds
                let result = try trainingStep.run(batch, step: step, learningRate: 0.01)
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
                if step >= warmup {
                    seconds[k].append(elapsed)
                    phases[k].append(result.phases)
                    if k == 0 { readyClock?.record(stepStart: start, phases: result.phases) }
                }
            }
            if step >= warmup {
                let products: [(GEMMKernel, Precision)] =
                    [(.openBLAS, .float32), (.oneDNN, .float32)] + (bfloat16 ? [(.oneDNN, .bfloat16)] : [])
                for (index, (kernel, precision)) in products.enumerated() {
                    let start = DispatchTime.now().uptimeNanoseconds
                    gemm.run(on: kernel, precision: precision)
                    gemmSeconds[index].append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
                }
            }
        }
        let dense = DenseRate(
            openblasGFLOPS: gemm.flops / median(gemmSeconds[0]) * 1e-9,
            onednnGFLOPS: gemm.flops / median(gemmSeconds[1]) * 1e-9,
            bfloat16GFLOPS: bfloat16 ? gemm.flops / median(gemmSeconds[2]) * 1e-9 : nil)
        let profiles = try profile ? trainingSteps.map { try profiled($0, batch: batch) } : nil
        let medians = seconds.map(median)
        let perMethod = trainingSteps.indices.map { k in
            let p = phases[k]
            return MethodResult(
                method: variants[k].method, precision: variants[k].precision,
                teacherPrecision: variants[k].teacherPrecision, medianStepMilliseconds: medians[k] * 1e3,
                imagesPerSecond: Double(config.batchSize) / medians[k],
                helperParameters: trainingSteps[k].modules.helperParameterCount, versusFirst: medians[k] / medians[0],
                versusFirstPaired: median(zip(seconds[k], seconds[0]).map { $0 / $1 }),
                phases: Phases(
                    forward: median(p.map(\.forward)) * 1e3, teacher: median(p.map(\.teacher)) * 1e3,
                    loss: median(p.map(\.loss)) * 1e3, backward: median(p.map(\.backward)) * 1e3,
                    reduce: median(p.map(\.reduce)) * 1e3, optimizer: median(p.map(\.optimizer)) * 1e3),
                modelGFLOPPerStep: stepFLOPs[k] * 1e-9, achievedGFLOPS: stepFLOPs[k] / medians[k] * 1e-9,
                utilisation: stepFLOPs[k] / medians[k] * 1e-9 / dense.rate(for: variants[k].precision),
                profile: profiles?[k])
        }
        return Result(
            model: config.model, parameters: trainingSteps[0].modules.student.parameterCount,
            precision: variants[0].precision, teacherPrecision: variants[0].teacherPrecision,
            bfloat16Arithmetic: variants.contains { $0.precision == .bfloat16 || $0.teacherPrecision == .bfloat16 }
                ? BFloat16Arithmetic.effective.rawValue : nil,
            batchSize: config.batchSize, threads: Threads.count,
            steps: steps, medianStepMilliseconds: medians[0] * 1e3,
            imagesPerSecond: Double(config.batchSize) / medians[0],
            peakResidentMegabytes: peakResidentMegabytes(),
            peakTensorMegabytes: Double(BufferPool.shared.stats.peakBytesInUse) / 1_048_576,
            poolMegabytes: Double(BufferPool.shared.stats.bytesHeld) / 1_048_576, teacherModel: teacherModel,
            methods: teacherModel == nil && variants.count == 1 ? nil : perMethod,
            modelGFLOPPerStep: perMethod[0].modelGFLOPPerStep, achievedGFLOPS: perMethod[0].achievedGFLOPS,
            denseRate: dense, utilisation: perMethod[0].utilisation,
            profile: teacherModel == nil ? perMethod[0].profile : nil,
            phases: perMethod[0].phases,
            gradientBytes: 4 * trainingSteps[0].modules.trainableParameters.reduce(0) { $0 + $1.count },
            gradientReady: readyClock.map { clock in
                zip(clock.parameters, clock.fractions).map {
                    GradientReady(bytes: 4 * $0.count, backwardFraction: $1.isEmpty ? 1 : median($1))
                }
            } ?? [])
    }
}

/// `count` random images of `shape` (bytes, normalised like a dataset of uniform noise) with
/// random labels of `classes` classes, as training and test split: what the step benchmarks train on.
func randomImageSplits(shape: [Int], classes: Int, count: Int, seed: UInt64 = 1) -> DatasetSplits {
    var generator = RandomGenerator(seed: seed)
    func split(_ name: String) -> ImageDataset {
        let pixels = (0..<(count * shape.reduce(1, *))).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let labels = (0..<count).map { _ in Int32(generator.next() % UInt64(classes)) }
        return ImageDataset(name: "random", shape: shape, classes: classes, pixels: pixels, labels: labels)
    }
    let channels = shape[0]
    return DatasetSplits(
        train: split("train"), test: split("test"), mean: [Float](repeating: 0.5, count: channels),
        std: [Float](repeating: 0.29, count: channels), defaultAugmentation: .none)
}

/// Peak resident set size of this process (getrusage reports kilobytes on Linux).
func peakResidentMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}
