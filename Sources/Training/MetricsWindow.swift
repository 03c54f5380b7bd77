import Foundation

/// Averages of the steps since the last `metrics.jsonl` line: loss, accuracy, the method's
/// terms and throughput.
struct MetricsWindow {
    private var loss = 0.0, correct = 0.0, images = 0, steps = 0, dataWait = 0.0
    private var terms: [String: Double] = [:]
    private var phases = StepPhases()
    private var started = Date()

    var meanLoss: Double { loss / Double(max(steps, 1)) }
    var accuracy: Double { correct / Double(max(images, 1)) }
    var stepCount: Int { steps }

    /// Seconds per step the loop waited for its batch.
    var meanDataWait: Double { dataWait / Double(max(steps, 1)) }
    /// The share of the window's wall time spent waiting for batches.
    var dataWaitFraction: Double { dataWait / max(Date().timeIntervalSince(started), 1e-9) }

    mutating func add(_ step: StepRecord) {
        dataWait += step.dataWait
        phases.forward += step.phases.forward
        phases.teacher += step.phases.teacher
        phases.loss += step.phases.loss
        phases.backward += step.phases.backward
        phases.reduce += step.phases.reduce
        phases.optimizer += step.phases.optimizer
        loss += Double(step.statistics.loss)
        correct += step.statistics.correct
        images += step.images
        steps += 1
        for (name, value) in step.statistics.terms { terms[name, default: 0] += value }
    }

    /// The `kind: train` line for `metrics.jsonl`, and a fresh window.
    mutating func record(
        step: Int, epoch: Int, learningRate: Float, communication: (allreduce: Double, exposed: Double)?
    ) -> MetricsRecord {
        let elapsed = Date().timeIntervalSince(started)
        var record = MetricsRecord(
            kind: .train, step: step, epoch: epoch,
            values: [
                "loss": meanLoss, "top1": accuracy, "lr": Double(learningRate),
                "images_per_sec": Double(images) / max(elapsed, 1e-9),
                "data_wait_seconds": meanDataWait, "data_wait_fraction": dataWait / max(elapsed, 1e-9),
            ])
        for (name, total) in terms { record["loss_\(name)"] = total / Double(steps) }
        // Seconds per step in each part of the step on rank 0: the student's forward, the
        // teacher's outputs, the objective, backward, the exposed wait for the gradient
        // allreduce (with the statistics' own), and clipping plus the update.
        let perStep = 1 / Double(max(steps, 1))
        record["forward_seconds"] = phases.forward * perStep
        record["teacher_seconds"] = phases.teacher * perStep
        record["objective_seconds"] = phases.loss * perStep
        record["backward_seconds"] = phases.backward * perStep
        record["reduce_wait_seconds"] = phases.reduce * perStep
        record["optimizer_seconds"] = phases.optimizer * perStep
        if let communication {
            // Seconds per step spent in allreduce on the communication thread, and the part the step waited for.
            record["allreduce_seconds"] = communication.allreduce
            record["allreduce_exposed_seconds"] = communication.exposed
        }
        self = MetricsWindow()
        return record
    }
}
