import Data
import Models
import Tensors

/// Where a step's teacher outputs (logits and taps) come from: the frozen teacher run in this
/// process, or a teacher rank that computed them for this rank's batch (`OffloadedTeacher`).
public protocol TeacherSource: AnyObject {
    /// The teacher's outputs for `batch`, the next step's, computed without gradients.
    func outputs(for batch: Batch) throws -> ModelOutput
}

/// The frozen teacher, run inline on each batch.
public final class InlineTeacher: TeacherSource {
    public let model: any ImageClassifier

    public init(model: any ImageClassifier) {
        model.eval()
        model.freeze()
        self.model = model
    }

    public func outputs(for batch: Batch) -> ModelOutput {
        withNoGrad { model.forward(batch.images) }
    }
}
