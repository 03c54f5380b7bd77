import Cluster
import Data
import Foundation
import Models
import Settings
import Tensors

// Teacher offload (`--teacher-ranks K`): the last K ranks of the job run the frozen teacher and
// stream its logits and the tapped features the loss reads to the R student ranks; student s is
// served by teacher rank R + s mod K. A teacher rank rebuilds its students' batches from the
// sampler and the augmentation seeds, so no image crosses the wire, and works one step ahead
// with nonblocking sends. Messages of one step: a header [step, checksum of the sample indices]
// (tag 0), the logits (tag 1), then each tap (tags 2, 3, ...); MPI keeps messages with the same
// source and tag in order, so steps never mix.

/// A checksum of a batch's sample indices, so a student detects a teacher serving another batch.
func sampleChecksum(_ indices: [Int]) -> Int {
    var hash = 1469598103934665603 as UInt64
    for index in indices { hash = (hash ^ UInt64(index)) &* 1099511628211 }
    return Int(bitPattern: UInt(hash >> 1))
}

/// Per-sample shapes of what a teacher rank sends: logits, then the taps the method reads.
struct TeacherMessageLayout {
    let tapIndices: [Int]
    let tapCount: Int
    let tapLayouts: [TapLayout]
    /// Shapes without the batch dimension: [classes], then each used tap's.
    let sampleShapes: [[Int]]

    init(teacher: any ImageClassifier, inputShape: [Int], classes: Int, tapIndices: [Int]) {
        let taps = ModelRegistry.describeTaps(teacher, inputShape: inputShape)
        self.tapIndices = tapIndices
        tapCount = taps.count
        tapLayouts = tapIndices.map { taps[$0].layout }
        sampleShapes = [[classes]] + tapIndices.map { Array(taps[$0].shape.dropFirst()) }
    }
}

/// The student side: receives the teacher's outputs for each step, posting the receives for the
/// next step as soon as the current one arrives.
final class OffloadedTeacher: TeacherSource {
    private let link: Communicator
    private let teacherRank: Int
    private let layout: TeacherMessageLayout
    private let localBatch: Int
    private let totalSteps: Int
    private var step: Int
    private var posted: (header: UnsafeMutablePointer<Int>, tensors: [Tensor], requests: [Communicator.Request])?

    init(
        link: Communicator, teacherRank: Int, layout: TeacherMessageLayout, localBatch: Int, firstStep: Int,
        totalSteps: Int
    ) throws {
        self.link = link
        self.teacherRank = teacherRank
        self.layout = layout
        self.localBatch = localBatch
        self.totalSteps = totalSteps
        step = firstStep
        if step < totalSteps { try post() }
    }

    deinit { posted?.header.deallocate() }

    private func post() throws {
        let header = UnsafeMutablePointer<Int>.allocate(capacity: 2)
        let tensors = layout.sampleShapes.map { Tensor(uninitializedShape: [localBatch] + $0) }
        var requests = [
            try link.receiveAsync(UnsafeMutableBufferPointer(start: header, count: 2), from: teacherRank, tag: 0)
        ]
        for (i, tensor) in tensors.enumerated() {
            requests.append(
                try link.receiveAsync(
                    UnsafeMutableBufferPointer(start: tensor.data, count: tensor.count), from: teacherRank, tag: 1 + i))
        }
        posted = (header, tensors, requests)
    }

    func outputs(for batch: Batch) throws -> ModelOutput {
        guard let (header, tensors, requests) = posted else {
            throw UserError(
                "internal: teacher outputs requested for step \(step + 1) beyond the \(totalSteps) steps of the run")
        }
        for request in requests {
            try request.wait(context: "teacher outputs of step \(step + 1) from teacher rank \(teacherRank)")
        }
        let (sentStep, checksum) = (header[0], header[1])
        header.deallocate()
        posted = nil
        guard sentStep == step, checksum == sampleChecksum(batch.indices) else {
            throw UserError(
                "teacher rank \(teacherRank) sent outputs for step \(sentStep + 1) (sample checksum \(checksum)) while this rank trains step \(step + 1) (checksum \(sampleChecksum(batch.indices))); both must run the same configuration"
            )
        }
        step += 1
        if step < totalSteps { try post() }
        var taps = [FeatureTap](
            repeating: FeatureTap(tensor: Tensor(zeros: [0]), layout: .spatial), count: layout.tapCount)
        for (k, index) in layout.tapIndices.enumerated() {
            taps[index] = FeatureTap(tensor: tensors[1 + k], layout: layout.tapLayouts[k])
        }
        return ModelOutput(logits: tensors[0], taps: taps)
    }
}

/// The teacher rank's side: for every step, for every student it serves, rebuild the student's
/// batch, run the frozen teacher, and send the outputs; at most two steps per student are in flight.
struct TeacherServer {
    let link: Communicator
    let teacher: InlineTeacher
    let layout: TeacherMessageLayout
    let data: TrainingData
    let students: [Int]

    /// Sends still in flight for one step: the buffers they read and their requests.
    private struct StepSends {
        let step: Int
        let buffers: [Tensor]
        let headers: UnsafeMutablePointer<Int>
        let requests: [Communicator.Request]

        func complete() throws {
            for request in requests { try request.wait(context: "sending teacher outputs of step \(step + 1)") }
            headers.deallocate()
        }
    }

    func serve(fromStep firstStep: Int) throws {
        guard !students.isEmpty else { return }
        let streams = students.map { TrainingBatches(data, rank: $0) }
        var inFlight: [StepSends] = []
        for step in firstStep..<data.totalSteps {
            var buffers: [Tensor] = []
            var requests: [Communicator.Request] = []
            let headers = UnsafeMutablePointer<Int>.allocate(capacity: 2 * students.count)
            for (n, student) in students.enumerated() {
                let batch = try streams[n].batch(step: step)
                let output = teacher.outputs(for: batch)
                let pieces = [output.logits] + layout.tapIndices.map { output.taps[$0].tensor }
                for (piece, shape) in zip(pieces, layout.sampleShapes) where piece.shape != [batch.labels.count] + shape
                {
                    throw UserError(
                        "internal: teacher output \(piece.shape) does not match the expected \([batch.labels.count] + shape)"
                    )
                }
                headers[2 * n] = step
                headers[2 * n + 1] = sampleChecksum(batch.indices)
                requests.append(
                    try link.sendAsync(UnsafeBufferPointer<Int>(start: headers + 2 * n, count: 2), to: student, tag: 0))
                for (i, piece) in pieces.enumerated() {
                    requests.append(
                        try link.sendAsync(
                            UnsafeBufferPointer<Float>(start: piece.data, count: piece.count), to: student, tag: 1 + i))
                }
                buffers += pieces
            }
            inFlight.append(StepSends(step: step, buffers: buffers, headers: headers, requests: requests))
            FailureInjection.afterStep(step + 1, rank: Communicator.world.rank)
            // One step ahead: before computing the next step, the one before this must be delivered.
            if inFlight.count >= 2 { try inFlight.removeFirst().complete() }
        }
        for entry in inFlight { try entry.complete() }
    }
}
