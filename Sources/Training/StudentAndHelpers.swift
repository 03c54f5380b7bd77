import Distill
import Layers
import Models
import Tensors

/// The student and its method's trainable helpers as one module: everything the optimizer
/// updates, the replicas keep identical and a checkpoint holds. Its parameters are named as
/// before the two were joined: the student's own names, then `aligners.0.conv.weight` and the
/// like in the optimizer state, `aux.aligners.0.conv.weight` among the checkpoint's tensors.
public final class StudentAndHelpers: Module {
    public let student: any ImageClassifier
    public let helpers: [(String, any Module)]

    public init(student: any ImageClassifier, helpers: [(String, any Module)]) {
        self.student = student
        self.helpers = helpers
    }

    public var ownParameters: [(String, Tensor)] { student.ownParameters }
    public var ownBuffers: [(String, Tensor)] { student.ownBuffers }
    public var children: [(String, any Module)] { student.children + helpers }
    public var isTraining: Bool {
        get { student.isTraining }
        set { student.isTraining = newValue }
    }

    /// The helpers' parameters and buffers as checkpoints name them (`aux.` + prefix).
    public var helperState: [(String, Tensor)] {
        helpers.flatMap { prefix, module in module.stateDict().map { ("aux.\(prefix).\($0.0)", $0.1) } }
    }

    /// Everything the replicas must agree on: the student's state dict, then the helpers'.
    public var fullState: [(String, Tensor)] { student.stateDict() + helperState }

    public var helperParameterCount: Int { helpers.reduce(0) { $0 + $1.1.parameterCount } }

    /// Parameters that receive gradients, in registration order (backward finishes them roughly
    /// in reverse, which is the bucket order).
    public var trainableParameters: [Tensor] { parameters().filter(\.requiresGrad) }
}
