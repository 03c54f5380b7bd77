import Tensors

/// A trainable building block. Each module lists its own parameters, buffers and children;
/// the extension derives PyTorch-style dotted names (`layer1.0.conv1.weight`) from them, so
/// state dicts and checkpoints match what PyTorch and timm would produce.
public protocol Module: AnyObject {
    /// Parameters owned directly by this module, by local name.
    var ownParameters: [(String, Tensor)] { get }
    /// Non-trainable state (running statistics), by local name.
    var ownBuffers: [(String, Tensor)] { get }
    /// Sub-modules, by local name.
    var children: [(String, any Module)] { get }
    /// Training (batch statistics, dropout) or evaluation behaviour.
    var isTraining: Bool { get set }
}

/// A module that maps one tensor to one tensor.
public protocol Layer: Module {
    func callAsFunction(_ x: Tensor) -> Tensor
}

extension Module {
    public var ownParameters: [(String, Tensor)] { [] }
    public var ownBuffers: [(String, Tensor)] { [] }
    public var children: [(String, any Module)] { [] }

    public func namedParameters(prefix: String = "") -> [(String, Tensor)] {
        ownParameters.map { (prefix + $0.0, $0.1) }
            + children.flatMap { $0.1.namedParameters(prefix: prefix + $0.0 + ".") }
    }

    public func namedBuffers(prefix: String = "") -> [(String, Tensor)] {
        ownBuffers.map { (prefix + $0.0, $0.1) }
            + children.flatMap { $0.1.namedBuffers(prefix: prefix + $0.0 + ".") }
    }

    public func parameters() -> [Tensor] { namedParameters().map { $0.1 } }

    /// Parameters then buffers, the contents of a state dict.
    public func stateDict() -> [(String, Tensor)] { namedParameters() + namedBuffers() }

    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.count } }

    /// Sets training mode on this module and all below it.
    public func train(_ training: Bool = true) {
        isTraining = training
        for (_, child) in children { child.train(training) }
    }

    public func eval() { train(false) }

    /// Calls `body` on this module and every module below it, parents first.
    public func forEachModule(_ body: (any Module) -> Void) {
        body(self)
        for (_, child) in children { child.forEachModule(body) }
    }

    /// Stops gradients to every parameter (a frozen teacher).
    public func freeze() {
        for p in parameters() { p.requiresGrad = false }
    }

    public func zeroGrad() {
        for p in parameters() { p.zeroGrad() }
    }
}
