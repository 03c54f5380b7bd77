import Foundation

/// A contiguous, row-major Float32 tensor. Tensors are references (like PyTorch's): views made
/// by `reshape` share storage, and autograd attaches gradients to the object.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let storage: Storage
    public let offset: Int
    public let count: Int

    /// Autograd's view of this tensor: its gradient and place in the graph, without its values,
    /// so the tape and the backward closures can hold it while the values are freed.
    public let node: GradientNode

    /// Whether gradients flow to (a leaf) or through (an op result) this tensor.
    public var requiresGrad: Bool {
        get { node.requiresGrad }
        set { node.requiresGrad = newValue }
    }
    /// Leaves are tensors no recorded op produced: parameters and inputs.
    public var isLeaf: Bool { node.isLeaf }
    /// The accumulated gradient, same shape. Leaves keep theirs across steps until `zeroGrad`.
    public var grad: Tensor? {
        get { node.grad }
        set { node.grad = newValue }
    }
    /// Called once per backward pass, the moment this leaf's gradient is final.
    public var gradientReadyHook: ((Tensor) -> Void)? {
        get { node.gradientReadyHook }
        set { node.gradientReadyHook = newValue }
    }
    /// This activation's values as bfloat16, as ops that run at bfloat16 saved them for backward
    /// (`SavedActivation`); activations are not written after the op that made them.
    var savedWords: BFloat16.Words?
    /// A constant weight's values as bfloat16, converted once (`keepBFloat16Copy`).
    public internal(set) var bfloat16Copy: BFloat16.Words?

    public init(shape: [Int], storage: Storage, offset: Int = 0, requiresGrad: Bool = false) {
        let count = shape.reduce(1, *)
        ensure(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in \(shape)")
        ensure(
            offset + count <= storage.capacity,
            "Tensor: view \(shape) at \(offset) exceeds storage of \(storage.capacity)")
        self.shape = shape
        self.storage = storage
        self.offset = offset
        self.count = count
        self.node = GradientNode(shape: shape, requiresGrad: requiresGrad)
    }

    /// Uninitialised tensor from the pool; every op writes all of its output.
    public convenience init(uninitializedShape shape: [Int]) {
        self.init(shape: shape, storage: Storage(count: shape.reduce(1, *)))
    }

    public convenience init(zeros shape: [Int], requiresGrad: Bool = false) {
        self.init(uninitializedShape: shape)
        data.update(repeating: 0, count: count)
        self.requiresGrad = requiresGrad
    }

    public convenience init(repeating value: Float, shape: [Int], requiresGrad: Bool = false) {
        self.init(uninitializedShape: shape)
        data.update(repeating: value, count: count)
        self.requiresGrad = requiresGrad
    }

    public convenience init(_ values: [Float], shape: [Int], requiresGrad: Bool = false) {
        ensure(values.count == shape.reduce(1, *), "Tensor: \(values.count) values for shape \(shape)")
        self.init(uninitializedShape: shape)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: values.count) }
        self.requiresGrad = requiresGrad
    }

    public convenience init(scalar: Float) { self.init([scalar], shape: []) }

    public var data: UnsafeMutablePointer<Float> { storage.base + offset }
    public var rank: Int { shape.count }
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }
    public var array: [Float] { Array(buffer) }
    public var item: Float {
        ensure(count == 1, "item: tensor of shape \(shape) has \(count) elements")
        return data[0]
    }

    /// Size of dimension `axis`; negative axes count from the end.
    public func size(_ axis: Int) -> Int { shape[normalizedAxis(axis)] }

    func normalizedAxis(_ axis: Int, op: String = "axis") -> Int {
        let a = axis < 0 ? axis + shape.count : axis
        ensure(a >= 0 && a < shape.count, "\(op): axis \(axis) out of range for shape \(shape)")
        return a
    }

    /// A fresh tensor with the same values, detached from autograd.
    public func copy() -> Tensor {
        let result = Tensor(uninitializedShape: shape)
        result.data.update(from: data, count: count)
        return result
    }

    /// Shares storage, cut off from autograd.
    public func detached() -> Tensor {
        Tensor(shape: shape, storage: storage, offset: offset)
    }

    public func fill(_ value: Float) { data.update(repeating: value, count: count) }

    public func copyValues(from other: Tensor) {
        ensure(other.count == count, "copyValues: shape \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }

    /// Makes `buffer` (same element count, e.g. a view into a flat gradient arena) this leaf's
    /// gradient storage: backward then accumulates straight into it.
    public func attachGradientBuffer(_ buffer: Tensor) {
        ensure(
            isLeaf && buffer.count == count,
            "attachGradientBuffer: buffer of \(buffer.count) elements for a leaf of shape \(shape)")
        grad = buffer.shape == shape ? buffer : Tensor(shape: shape, storage: buffer.storage, offset: buffer.offset)
        node.ownsGrad = true
    }

    /// Clears the gradient for the next step, keeping the buffer.
    public func zeroGrad() {
        if let grad, node.ownsGrad {
            grad.fill(0)
        } else {
            grad = nil
            node.ownsGrad = false
        }
    }
}

/// A tensor's place in autograd, apart from its values: what the tape records for an op's
/// output and what a backward closure holds for an input it only passes a gradient to.
public final class GradientNode: @unchecked Sendable {
    public let shape: [Int]
    public var requiresGrad: Bool
    public internal(set) var isLeaf = true
    public var grad: Tensor?
    /// Whether `grad` is this tensor's own buffer (false while it aliases an op's output gradient).
    var ownsGrad = false
    public var gradientReadyHook: ((Tensor) -> Void)?
    /// Tape bookkeeping: the generation in which this leaf was first used.
    var tapeGeneration: Int = -1

    init(shape: [Int], requiresGrad: Bool) {
        self.shape = shape
        self.requiresGrad = requiresGrad
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = buffer.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(shown)\(count > 8 ? ", ..." : "")])"
    }
}
