import Data
import Distill
import Foundation
import Layers
import Models
import Tensors

/// `sfkd bench step`: one training step (forward, backward, SGD with momentum) of a registry
/// model on random 3x32x32 images with 10 classes; the median over the timed steps. With a
/// teacher model and methods, a full distillation step (teacher forward included) per method,
/// the methods timed alternately, step after step, so their ratio is fair on a noisy host.
struct StepBenchmark {
    let model: String
    let batchSize: Int
    let steps: Int
    let warmup: Int
    var teacherModel: String?
    var methods: [DistillationMethod] = [.none]
    var stages: [Int] = DistillationSettings().stages

    struct Setup {
        let method: DistillationMethod
        let student: any ImageClassifier
        let objective: any TrainingObjective
        let optimizer: SGD
    }

    func run() throws -> [String: Any] {
        let shape = [3, 32, 32]
        var generator = RandomGenerator(seed: 1)
        let images = Tensor(uninitializedShape: [batchSize] + shape)
        for i in 0..<images.count { images.data[i] = generator.nextNormal() }
        let labels = (0..<batchSize).map { _ in Int(generator.next() % 10) }
        let batch = Batch(images: images, labels: labels, indices: Array(0..<batchSize))
        let teacher = try teacherModel.map { try ModelRegistry.make($0, inputShape: shape, classes: 10, seed: 3) }
        teacher?.eval()
        teacher?.freeze()

        var setups: [Setup] = []
        for method in methods {
            let student = try ModelRegistry.make(model, inputShape: shape, classes: 10, seed: 0)
            let objective: any TrainingObjective
            if let teacher, method != .none {
                var settings = DistillationSettings()
                settings.method = method
                settings.stages = stages
                objective = try DistillationObjective(settings: settings, studentTaps: ModelRegistry.describeTaps(student, inputShape: shape),
                                                      teacherTaps: ModelRegistry.describeTaps(teacher, inputShape: shape), classes: 10, seed: 0) { batch in
                    withNoGrad { teacher.forward(batch.images) }
                }
            } else {
                objective = CrossEntropyObjective(labelSmoothing: 0)
            }
            var named = student.namedParameters()
            for (prefix, module) in objective.auxiliaryModules { named += module.namedParameters(prefix: prefix + ".") }
            let groups = ParameterGroup.decayAndNoDecay(named, weightDecay: 5e-4, exempt: student.noWeightDecay)
            student.train()
            for (_, module) in objective.auxiliaryModules { module.train() }
            setups.append(Setup(method: method, student: student, objective: objective, optimizer: SGD(groups: groups, learningRate: 0.01, momentum: 0.9)))
        }
        // Per method and step: the whole step, then its phases (student forward, loss with the
        // teacher forward and the method's helpers, backward, optimizer).
        var seconds = [[Double]](repeating: [], count: setups.count)
        var phases = [[[Double]]](repeating: [[], [], [], []], count: setups.count)
        func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
        for step in 0..<(warmup + steps) {
            for (k, setup) in setups.enumerated() {
                let start = now()
                let output = setup.student.forward(images)
                let forwardDone = now()
                let (loss, _) = setup.objective.loss(student: output, batch: batch, step: step)
                let lossDone = now()
                setup.optimizer.zeroGrad()
                loss.backward()
                let backwardDone = now()
                setup.optimizer.step()
                let end = now()
                if step >= warmup {
                    seconds[k].append(Double(end - start) * 1e-9)
                    for (p, (a, b)) in [(start, forwardDone), (forwardDone, lossDone), (lossDone, backwardDone), (backwardDone, end)].enumerated() {
                        phases[k][p].append(Double(b - a) * 1e-9)
                    }
                }
            }
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let medians = seconds.map(median)
        let perMethod: [[String: Any]] = setups.indices.map { k in
            let setup = setups[k]
            return ["method": setup.method.rawValue, "median_step_ms": medians[k] * 1e3, "images_per_sec": Double(batchSize) / medians[k],
                    "helper_parameters": setup.objective.auxiliaryModules.reduce(0) { $0 + $1.1.parameterCount },
                    "vs_first": medians[k] / medians[0],
                    // Step i of every method runs back to back, so their ratio sees one machine
                    // state; its median is steadier than the ratio of medians on a noisy host.
                    "vs_first_paired": median(zip(seconds[k], seconds[0]).map { $0 / $1 }),
                    "phases_ms": ["forward": median(phases[k][0]) * 1e3, "loss": median(phases[k][1]) * 1e3,
                                  "backward": median(phases[k][2]) * 1e3, "optimizer": median(phases[k][3]) * 1e3]]
        }
        var result: [String: Any] = ["model": model, "parameters": setups[0].student.parameterCount, "batch_size": batchSize,
                                     "threads": Threads.count, "steps": steps, "median_step_ms": medians[0] * 1e3,
                                     "images_per_sec": Double(batchSize) / medians[0], "peak_rss_mb": peakResidentMegabytes()]
        if let teacherModel {
            result["teacher_model"] = teacherModel
            result["methods"] = perMethod
        }
        return result
    }
}

/// Peak resident set size of this process (getrusage reports kilobytes on Linux).
func peakResidentMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}
