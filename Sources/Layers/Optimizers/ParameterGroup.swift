import Tensors

/// Parameters that share optimizer settings (PyTorch's param_groups).
public struct ParameterGroup {
    public var parameters: [Tensor]
    public var names: [String]
    public var weightDecay: Float

    public init(parameters: [Tensor], names: [String]? = nil, weightDecay: Float) {
        self.parameters = parameters
        self.names = names ?? parameters.indices.map { "param\($0)" }
        self.weightDecay = weightDecay
    }

    /// Two groups, the usual recipe: decay on weight matrices and kernels, none on biases, norm
    /// weights and other 1-D parameters, nor on parameters named in `exempt` (position
    /// embeddings, class tokens).
    public static func decayAndNoDecay(_ named: [(String, Tensor)], weightDecay: Float, exempt: Set<String> = [])
        -> [ParameterGroup]
    {
        var decay: [(String, Tensor)] = [], noDecay: [(String, Tensor)] = []
        for (name, p) in named where p.requiresGrad {
            let lastComponent = name.split(separator: ".").last.map(String.init) ?? name
            if p.rank <= 1 || name.hasSuffix(".bias") || exempt.contains(name) || exempt.contains(lastComponent) {
                noDecay.append((name, p))
            } else {
                decay.append((name, p))
            }
        }
        return [
            ParameterGroup(parameters: decay.map { $0.1 }, names: decay.map { $0.0 }, weightDecay: weightDecay),
            ParameterGroup(parameters: noDecay.map { $0.1 }, names: noDecay.map { $0.0 }, weightDecay: 0),
        ]
    }
}

/// An optimizer updates parameters from their `.grad` at a learning rate the caller sets
/// each step (from a schedule).
public protocol Optimizer: AnyObject {
    var groups: [ParameterGroup] { get }
    var learningRate: Float { get set }
    /// Steps taken.
    var stepCount: Int { get }
    func step()
    /// Per-parameter state tensors by name (`<param>.momentum_buffer`, ...), for checkpoints.
    func stateTensors() -> [(String, Tensor)]
    /// Restores `stepCount` and state tensors saved by `stateTensors`.
    func restore(stepCount: Int, state: [String: Tensor]) throws
}

public struct OptimizerStateError: Error, CustomStringConvertible {
    public let description: String

    public init(description: String) { self.description = description }
}

extension Optimizer {
    public func zeroGrad() {
        for group in groups { for p in group.parameters { p.zeroGrad() } }
    }

    func restoreState(_ tensors: [(String, Tensor)], from state: [String: Tensor]) throws {
        for (name, tensor) in tensors {
            guard let saved = state[name] else {
                throw OptimizerStateError(description: "optimizer state: missing tensor '\(name)'")
            }
            guard saved.shape == tensor.shape else {
                throw OptimizerStateError(
                    description: "optimizer state: '\(name)' has shape \(saved.shape), expected \(tensor.shape)")
            }
            tensor.copyValues(from: saved)
        }
    }
}
