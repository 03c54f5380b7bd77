import Foundation
import Layers
import Models
import Tensors

/// `sfkd bench step`: one training step (forward, backward, SGD with momentum) of a registry
/// model on random 3x32x32 images with 10 classes; the median over the timed steps.
struct StepBenchmark {
    let model: String
    let batchSize: Int
    let steps: Int
    let warmup: Int

    func run() throws -> [String: Any] {
        let network = try ModelRegistry.make(model, inputShape: [3, 32, 32], classes: 10, seed: 0)
        let groups = ParameterGroup.decayAndNoDecay(network.namedParameters(), weightDecay: 5e-4, exempt: network.noWeightDecay)
        let optimizer = SGD(groups: groups, learningRate: 0.01, momentum: 0.9)
        var generator = RandomGenerator(seed: 1)
        let images = Tensor(uninitializedShape: [batchSize, 3, 32, 32])
        for i in 0..<images.count { images.data[i] = generator.nextNormal() }
        let labels = (0..<batchSize).map { _ in Int(generator.next() % 10) }
        network.train()
        var seconds: [Double] = []
        for step in 0..<(warmup + steps) {
            let start = DispatchTime.now().uptimeNanoseconds
            let loss = crossEntropy(network.forward(images).logits, labels: labels)
            optimizer.zeroGrad()
            loss.backward()
            optimizer.step()
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            if step >= warmup { seconds.append(elapsed) }
        }
        seconds.sort()
        let median = seconds[seconds.count / 2]
        return ["model": model, "parameters": network.parameterCount, "batch_size": batchSize, "threads": Threads.count,
                "steps": steps, "median_step_ms": median * 1e3, "images_per_sec": Double(batchSize) / median,
                "peak_rss_mb": peakResidentMegabytes()]
    }
}

/// Peak resident set size of this process (getrusage reports kilobytes on Linux).
func peakResidentMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}
