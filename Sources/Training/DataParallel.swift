import Cluster
import Distill
import Foundation
import Layers
import Models
import Tensors

/// The data-parallel parts of `Trainer`: agreeing on the start state, gradient averaging,
/// sync-BN, and global statistics. With one rank each of these is a no-op.
extension Trainer {
    /// Runs `body` on rank 0 only and tells the other ranks whether it worked, so an error there
    /// (a bad run folder, a full disk) stops every rank instead of leaving them in the next collective.
    func onLeader(_ what: String, among communicator: Communicator, _ body: () throws -> Void) throws {
        var failure: Error?
        var status = [0]
        if communicator.rank == 0 {
            do { try body() } catch { failure = error; status[0] = 1 }
        }
        try communicator.broadcast(&status, root: 0, context: what)
        if let failure { throw failure }
        if status[0] != 0 { throw UserError("rank 0 could not \(what); its message above says why") }
    }

    /// Rank 0's step, generator state and counters, on every rank (teacher ranks need the step).
    func shareTrainingState(_ state: TrainingState) throws -> TrainingState {
        guard world.size > 1 else { return state }
        var words = [state.step, Int(bitPattern: UInt(state.random[0])), Int(bitPattern: UInt(state.random[1])), state.trainedImages]
        try world.broadcast(&words, root: 0, context: "training state")
        var seconds = [state.trainedSeconds]
        try world.broadcast(&seconds, root: 0, context: "training state")
        return TrainingState(step: words[0], random: [UInt64(UInt(bitPattern: words[1])), UInt64(UInt(bitPattern: words[2]))],
                             trainedSeconds: seconds[0], trainedImages: words[3])
    }

    /// Parameters of the student and the method's helpers, in registration order (backward
    /// finishes them roughly in reverse, which is the bucket order).
    var trainableParameters: [Tensor] {
        (model.parameters() + objective.auxiliaryModules.flatMap { $0.1.parameters() }).filter(\.requiresGrad)
    }

    var allBuffers: [Tensor] {
        (model.namedBuffers() + objective.auxiliaryModules.flatMap { $0.1.namedBuffers() }).map(\.1)
    }

    /// Makes the student replicas identical and wires gradient averaging: checks the model
    /// signature against rank 0, broadcasts parameters, buffers and optimizer state from rank 0,
    /// installs the sync-BN reducer, creates the gradient buckets and the teacher link.
    func prepareStudent(firstStep: Int, teacherLink: Communicator?) throws {
        if studentRanks > 1 {
            let state = model.stateDict() + auxiliaryState + optimizer.stateTensors()
            try ReplicaSync.checkSignature(state.map { ($0.0, $0.1.shape) }, communicator: students)
            try ReplicaSync.broadcast(state.map(\.1), communicator: students, context: "initial parameters, buffers and optimizer state")
            var stepCount = [optimizer.stepCount]
            try students.broadcast(&stepCount, root: 0, context: "optimizer step count")
            if students.rank != 0 {
                try optimizer.restore(stepCount: stepCount[0], state: Dictionary(optimizer.stateTensors(), uniquingKeysWith: { a, _ in a }))
            }
            if config.syncBatchNorm {
                let statistics = try students.duplicate(name: "sync-bn")
                let reducer: StatisticsReducer = { buffer in
                    do {
                        try statistics.allreduce(buffer, context: "sync-BN statistics")
                    } catch {
                        FileHandle.standardError.write("sfkd rank \(statistics.worldRanks[statistics.rank]): \(error)\n".data(using: .utf8)!)
                        statistics.abort(code: 1)
                    }
                }
                let modules: [any Module] = [model] + objective.auxiliaryModules.map(\.1)
                for root in modules {
                    root.forEachModule { module in (module as? BatchNorm2d)?.statisticsReducer = reducer }
                }
            }
            gradientSync = GradientSync(parameters: trainableParameters, communicator: try students.duplicate(name: "gradients"),
                                        bucketBytes: Int(config.bucketMegabytes * 1_048_576), overlap: config.overlap)
        }
        if let teacherLink, let teacher, let objective = objective as? DistillationObjective {
            let link = try TeacherOutputReceiver(trainer: self, link: teacherLink, teacher: teacher, tapIndices: objective.teacherTapIndices, firstStep: firstStep)
            receiverSlot?.receiver = link
        }
    }

    /// Mean loss and terms over the global batch and its correct count (one allreduce of a few numbers).
    func globalStatistics(loss: Float, parts: [String: Float], correct: Int, step: Int) throws -> (Float, [String: Double], Double) {
        let names = parts.keys.sorted()
        var values = [Double(loss), Double(correct)] + names.map { Double(parts[$0]!) }
        if studentRanks > 1 {
            try students.allreduce(&values, context: "loss statistics, step \(step + 1)")
            let ranks = Double(studentRanks)
            values[0] /= ranks
            for i in 2..<values.count { values[i] /= ranks }
        }
        var global: [String: Double] = [:]
        for (i, name) in names.enumerated() { global[name] = values[2 + i] }
        return (Float(values[0]), global, values[1])
    }

    /// Test metrics, each student rank evaluating every R-th sample with rank 0's buffers.
    func evaluate() throws -> EvaluationResult {
        try synchronizeBuffers()
        var totals = Evaluation.totals(model, on: splits.test, mean: splits.mean, std: splits.std, batchSize: config.evalBatchSize,
                                       shard: students.rank, shards: studentRanks)
        try students.allreduce(&totals, context: "evaluation totals")
        return Evaluation.result(totals)
    }

    /// BatchNorm running statistics from rank 0 (without sync-BN each replica's drift apart, as
    /// in DDP, which broadcasts them too); evaluation and checkpoints then match on every rank.
    func synchronizeBuffers() throws {
        guard studentRanks > 1 else { return }
        try ReplicaSync.broadcast(allBuffers, communicator: students, context: "BatchNorm running statistics")
    }
}

/// Holds the teacher link the distillation objective's closure reads, set once the run starts.
final class TeacherOutputReceiverSlot {
    var receiver: TeacherOutputReceiver?
}
