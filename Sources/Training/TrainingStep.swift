import Data
import Distill
import Foundation
import Layers
import Models
import Tensors

/// Seconds spent in each part of a step on this rank.
public struct StepPhases: Codable, Sendable {
    public var forward = 0.0
    /// The teacher's outputs: its forward pass inline, or the wait for a teacher rank.
    public var teacher = 0.0
    /// The method's loss (helpers included).
    public var loss = 0.0
    public var backward = 0.0
    /// The wait for gradient averaging after backward, and the statistics allreduce.
    public var reduce = 0.0
    /// Clipping and the optimizer update.
    public var optimizer = 0.0

    public var total: Double { forward + teacher + loss + backward + reduce + optimizer }

    public init() {}
}

/// What a rank asks of the whole job after a step, agreed on through the step's statistics so
/// that every rank acts after the same step.
public struct StepRequests: Equatable, Sendable {
    /// A stop signal arrived: the run checkpoints and ends after the step.
    public var stop = false
    /// `checkpoint_minutes` have passed on rank 0's clock since the last checkpoint.
    public var checkpoint = false

    public init(stop: Bool = false, checkpoint: Bool = false) {
        self.stop = stop
        self.checkpoint = checkpoint
    }
}

/// What a step reports: statistics of the global batch, where this rank's time went, and the
/// job's requests.
public struct StepResult: Sendable {
    public var statistics: StepStatistics
    public var phases: StepPhases
    public var requests: StepRequests
    /// A rank was asked to stop during the step: the run checkpoints and ends after it.
    public var stopRequested: Bool { requests.stop }
}

/// A loss that is NaN or infinite on some rank; every rank stops before the update.
public struct NonFiniteLoss: Error {
    public let loss: Float
}

/// One optimizer step: student forward, the teacher's outputs, the method's loss, backward
/// with gradient averaging across the replicas, clipping, the update. The trainer and every
/// step benchmark run this same code.
public final class TrainingStep {
    public let modules: StudentAndHelpers
    public let method: any DistillationMethod
    public let optimizer: any Optimizer
    public let replicas: ReplicaGroup
    let teacher: (any TeacherSource)?
    let clipNorm: Float?
    /// The arithmetic of the student's forward and the method's loss (the backward follows it).
    let precision: Precision

    public init(
        modules: StudentAndHelpers, method: any DistillationMethod, optimizer: any Optimizer, replicas: ReplicaGroup,
        teacher: (any TeacherSource)?, clipNorm: Float? = nil, precision: Precision = .float32
    ) {
        self.precision = precision
        self.modules = modules
        self.method = method
        self.optimizer = optimizer
        self.replicas = replicas
        self.teacher = teacher
        self.clipNorm = clipNorm
    }

    /// Runs step `step` (0-based) on `batch` at `learningRate`. Throws `NonFiniteLoss` before
    /// updating anything when the global loss is not finite. `checkpointDue`, asked when the
    /// step's statistics are reduced: this rank's wish for a checkpoint after the step.
    public func run(
        _ batch: Batch, step: Int, learningRate: Float, checkpointDue: () -> Bool = { false }
    ) throws -> StepResult {
        var phases = StepPhases()
        var clock = DispatchTime.now().uptimeNanoseconds
        func lap() -> Double {
            let now = DispatchTime.now().uptimeNanoseconds
            defer { clock = now }
            return Double(now - clock) * 1e-9
        }
        optimizer.learningRate = learningRate
        let output = Autocast.run(precision) { modules.student.forward(batch.images) }
        phases.forward = lap()
        let teacherOutput = try teacher?.outputs(for: batch)
        phases.teacher = lap()
        // The method's own modules (projectors, DS2S, OFA's branches) under the student's
        // precision; its losses are float32 ops whatever it is.
        let loss = Autocast.run(precision) {
            method.loss(
                student: output, teacher: teacherOutput,
                targets: Targets(labels: batch.labels, soft: batch.softTargets), step: step)
        }
        let local = StepStatistics(
            loss: loss.total.item, correct: Double(countCorrect(output.logits, batch.labels)),
            terms: loss.terms.mapValues(Double.init))
        phases.loss = lap()
        replicas.zeroGradients()
        loss.total.backward()
        let stopReceived = StopSignal.received != 0
        phases.backward = lap()
        try replicas.finishGradients()
        let (statistics, requests) = try replicas.reduce(
            local, requests: StepRequests(stop: stopReceived, checkpoint: checkpointDue()), step: step)
        phases.reduce = lap()
        guard statistics.loss.isFinite else { throw NonFiniteLoss(loss: statistics.loss) }
        try replicas.update(clipNorm: clipNorm)
        phases.optimizer = lap()
        return StepResult(statistics: statistics, phases: phases, requests: requests)
    }

    private func countCorrect(_ logits: Tensor, _ labels: [Int]) -> Int {
        let classes = logits.shape[1]
        var correct = 0
        for (row, label) in labels.enumerated() {
            let scores = logits.data + row * classes
            var best = 0
            for c in 1..<classes where scores[c] > scores[best] { best = c }
            if best == label { correct += 1 }
        }
        return correct
    }
}
