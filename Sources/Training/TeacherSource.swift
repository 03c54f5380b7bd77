import Data
import Models
import Tensors

/// Where a step's teacher outputs (logits and taps) come from: the frozen teacher run in this
/// process, or a teacher rank that computed them for this rank's batch (`OffloadedTeacher`).
public protocol TeacherSource: AnyObject {
    /// The teacher's outputs for `batch`, the next step's, computed without gradients.
    func outputs(for batch: Batch) throws -> ModelOutput
}

/// The frozen teacher, run inline on each batch. It hands over the logits and the taps the
/// method declared (`tapIndices`), the others empty, as a teacher rank does: a method that
/// reads a tap it did not declare fails inline too, not only with teacher ranks.
public final class InlineTeacher: TeacherSource {
    public let model: any ImageClassifier
    public let tapIndices: [Int]
    /// The arithmetic of its forward (`teacher_precision`).
    public let precision: Precision

    public init(model: any ImageClassifier, tapIndices: [Int], precision: Precision = .float32) {
        model.eval()
        model.freeze()
        self.model = model
        self.tapIndices = tapIndices
        self.precision = precision
        // Its weights never change: at bf16 each matrix is converted once, not per product.
        if precision == .bfloat16 && BFloat16Arithmetic.effective == .native {
            for weight in model.parameters() where weight.rank == 2 { weight.keepBFloat16Copy() }
        }
    }

    public func outputs(for batch: Batch) -> ModelOutput {
        let output = withNoGrad { Autocast.run(precision) { model.forward(batch.images) } }
        let declared = Set(tapIndices)
        let taps = output.taps.enumerated().map { index, tap in
            declared.contains(index) ? tap : FeatureTap(tensor: Tensor(zeros: [0]), layout: tap.layout)
        }
        return ModelOutput(logits: output.logits, taps: taps)
    }
}
