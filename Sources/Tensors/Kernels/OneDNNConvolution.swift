import CDNNL
import Foundation

/// A convolution on oneDNN's primitives (forward, backward data, backward weights) for one
/// shape: NCHW input and output, OIHW weight (GOIHW with groups), as sfkd's other kernels. Each
/// primitive picks its own layouts (`format_tag_any`: blocked nChw16c where its AVX-512 or AVX2
/// kernels want them) and reorders at its boundary, as PyTorch's CPU convolutions do. At
/// bfloat16 the primitives take bfloat16 inputs (the reorders round sfkd's float32 to nearest
/// even) and write float32: forward (x, w) -> y, backward data (gy, w) -> gx, backward weights
/// (x, gy) -> gw.
final class OneDNNConvolution: @unchecked Sendable {
    struct Shape: Hashable {
        let batch, inChannels, outChannels, groups: Int
        let inputHeight, inputWidth, kernelHeight, kernelWidth: Int
        let strideHeight, strideWidth, paddingHeight, paddingWidth: Int
        var precision: Precision = .float32
    }

    let shape: Shape
    let forward: OneDNNPrimitive
    private var backwardDataPrimitive: OneDNNPrimitive?
    private var backwardWeightsPrimitive: OneDNNPrimitive?
    private let lock = NSLock()

    private let source, weights, destination: dnnl_memory_desc_t
    private var strides: [Int64] { [Int64(shape.strideHeight), Int64(shape.strideWidth)] }
    private var padding: [Int64] { [Int64(shape.paddingHeight), Int64(shape.paddingWidth)] }

    /// Whether oneDNN runs the forward pass with a kernel made for convolutions (its
    /// "jit:avx512_core", "jit_dw:avx2", ...) rather than by unfolding into a GEMM ("gemm:jit",
    /// which it takes for a depthwise 7x7 on a 1x1 or 2x2 plane, 20x slower than sfkd's loop)
    /// or its reference loops.
    let hasConvolutionKernel: Bool

    private init(_ shape: Shape) throws {
        self.shape = shape
        let s = shape
        let outputHeight = (s.inputHeight + 2 * s.paddingHeight - s.kernelHeight) / s.strideHeight + 1
        let outputWidth = (s.inputWidth + 2 * s.paddingWidth - s.kernelWidth) / s.strideWidth + 1
        source = OneDNN.plain([s.batch, s.inChannels, s.inputHeight, s.inputWidth], dnnl_nchw)
        destination = OneDNN.plain([s.batch, s.outChannels, outputHeight, outputWidth], dnnl_nchw)
        weights =
            s.groups == 1
            ? OneDNN.plain([s.outChannels, s.inChannels, s.kernelHeight, s.kernelWidth], dnnl_oihw)
            : OneDNN.plain(
                [s.groups, s.outChannels / s.groups, s.inChannels / s.groups, s.kernelHeight, s.kernelWidth],
                dnnl_goihw)
        var any = Self.anyLayouts(source, weights, destination, precision: s.precision, output: .destination)
        var operation = dnnl_convolution_desc_t()
        let strides = [Int64(s.strideHeight), Int64(s.strideWidth)]
        let padding = [Int64(s.paddingHeight), Int64(s.paddingWidth)]
        try OneDNN.check(
            dnnl_convolution_forward_desc_init(
                &operation, dnnl_forward_training, dnnl_convolution_direct, &any.source, &any.weights,
                nil, &any.destination, strides, padding, padding),
            "describing a forward convolution")
        forward = try OneDNNPrimitive(
            descriptor: try Self.descriptor(&operation, hint: nil),
            arguments: [
                .init(name: DNNL_ARG_SRC, plain: source, query: dnnl_query_src_md),
                .init(name: DNNL_ARG_WEIGHTS, plain: weights, query: dnnl_query_weights_md),
                .init(name: DNNL_ARG_DST, plain: destination, query: dnnl_query_dst_md, isOutput: true),
            ])
        // Asked once: the automatic choice consults it on every call.
        let implementation = forward.implementation
        hasConvolutionKernel = !implementation.contains("gemm") && !implementation.hasPrefix("ref")
    }

    private static func dims(_ descriptor: dnnl_memory_desc_t) -> [Int] {
        withUnsafeBytes(of: descriptor.dims) { raw in
            Array(raw.bindMemory(to: Int64.self).prefix(Int(descriptor.ndims))).map(Int.init)
        }
    }

    private static func descriptor(_ operation: inout dnnl_convolution_desc_t, hint: dnnl_primitive_desc_t?) throws
        -> dnnl_primitive_desc_t
    {
        var descriptor: dnnl_primitive_desc_t? = nil
        try OneDNN.check(
            withUnsafePointer(to: &operation) {
                dnnl_primitive_desc_create(
                    &descriptor, UnsafeRawPointer($0), OneDNN.userScratchpad, OneDNN.engine, hint)
            }, "creating a convolution")
        return descriptor!
    }

    /// Where each primitive takes the weights (or writes their gradient) among its arguments.
    static let weightsArgument = 1, weightGradientArgument = 2

    /// y = conv(x, w), overwriting y; `w` in the forward's chosen layout when `weightsChosen`.
    func runForward(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
        weightsChosen: Bool = false
    ) {
        Self.run(forward, x, w, y, chosen: weightsChosen ? Self.weightsArgument : nil)
    }

    /// gx = the input gradient of gy, overwriting gx; `w` as in `runForward` (the backward-data
    /// primitive's layout).
    func runBackwardData(
        _ gy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>,
        weightsChosen: Bool = false
    ) {
        Self.run(backwardData, gy, w, gx, chosen: weightsChosen ? Self.weightsArgument : nil)
    }

    /// gw = the weight gradient of gy, overwriting gw (in the primitive's chosen layout when
    /// `gradientChosen`).
    func runBackwardWeights(
        _ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, _ gw: UnsafeMutablePointer<Float>,
        gradientChosen: Bool = false
    ) {
        Self.run(backwardWeights, x, gy, gw, chosen: gradientChosen ? Self.weightGradientArgument : nil)
    }

    /// Two inputs and an output, plain except the argument `chosen` (in the primitive's layout).
    private static func run(
        _ primitive: OneDNNPrimitive, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        _ output: UnsafeMutablePointer<Float>, chosen: Int?
    ) {
        primitive.execute(
            [UnsafeMutablePointer(mutating: a), UnsafeMutablePointer(mutating: b), output],
            chosenLayout: chosen.map { [$0] } ?? [])
    }

    /// Created on first use: a frozen teacher never runs backward.
    var backwardData: OneDNNPrimitive {
        backward(\.backwardDataPrimitive, "backward-data", output: .source) { operation, any in
            dnnl_convolution_backward_data_desc_init(
                &operation, dnnl_convolution_direct, &any.source, &any.weights, &any.destination, strides, padding,
                padding)
        } arguments: {
            [
                .init(name: DNNL_ARG_DIFF_DST, plain: destination, query: dnnl_query_diff_dst_md),
                .init(name: DNNL_ARG_WEIGHTS, plain: weights, query: dnnl_query_weights_md),
                .init(name: DNNL_ARG_DIFF_SRC, plain: source, query: dnnl_query_diff_src_md, isOutput: true),
            ]
        }
    }

    var backwardWeights: OneDNNPrimitive {
        backward(\.backwardWeightsPrimitive, "backward-weights", output: .weights) { operation, any in
            dnnl_convolution_backward_weights_desc_init(
                &operation, dnnl_convolution_direct, &any.source, &any.weights, nil, &any.destination, strides,
                padding, padding)
        } arguments: {
            [
                .init(name: DNNL_ARG_SRC, plain: source, query: dnnl_query_src_md),
                .init(name: DNNL_ARG_DIFF_DST, plain: destination, query: dnnl_query_diff_dst_md),
                .init(name: DNNL_ARG_DIFF_WEIGHTS, plain: weights, query: dnnl_query_diff_weights_md, isOutput: true),
            ]
        }
    }

    /// The layouts a primitive may choose for each argument.
    private struct AnyLayouts {
        var source, weights, destination: dnnl_memory_desc_t
    }

    /// Which argument a primitive writes (the others it reads).
    private enum Output { case source, weights, destination }

    /// Any layout for each argument; at bfloat16 the arguments read are bfloat16 and the one
    /// written float32.
    private static func anyLayouts(
        _ source: dnnl_memory_desc_t, _ weights: dnnl_memory_desc_t, _ destination: dnnl_memory_desc_t,
        precision: Precision, output: Output
    ) -> AnyLayouts {
        func type(_ argument: Output) -> dnnl_data_type_t {
            precision == .bfloat16 && argument != output ? dnnl_bf16 : dnnl_f32
        }
        return AnyLayouts(
            source: OneDNN.any(dims(source), type(.source)), weights: OneDNN.any(dims(weights), type(.weights)),
            destination: OneDNN.any(dims(destination), type(.destination)))
    }

    /// The backward primitive cached at `cached`, created from `describe` with the forward as
    /// its hint. Its forward exists, so oneDNN has a backward for the shape: a failure is a bug.
    private func backward(
        _ cached: ReferenceWritableKeyPath<OneDNNConvolution, OneDNNPrimitive?>, _ what: String, output: Output,
        describe: (inout dnnl_convolution_desc_t, inout AnyLayouts) -> dnnl_status_t,
        arguments: () -> [OneDNNPrimitive.Slot]
    ) -> OneDNNPrimitive {
        lock.lock()
        defer { lock.unlock() }
        if let primitive = self[keyPath: cached] { return primitive }
        OneDNN.stayOnThisThread()  // creating primitives runs parallel loops too
        var any = Self.anyLayouts(source, weights, destination, precision: shape.precision, output: output)
        var operation = dnnl_convolution_desc_t()
        do {
            try OneDNN.check(describe(&operation, &any), "describing a \(what) convolution")
            let primitive = try OneDNNPrimitive(
                descriptor: try Self.descriptor(&operation, hint: forward.descriptor), arguments: arguments())
            self[keyPath: cached] = primitive
            return primitive
        } catch {
            fatalError("\(error) for \(shape), whose forward it created")
        }
    }

    nonisolated(unsafe) private static var cache: [Shape: OneDNNConvolution?] = [:]
    private static let cacheLock = NSLock()

    /// The convolution for `shape`, created on first use; nil where oneDNN has no kernel for it.
    static func forShape(_ shape: Shape) -> OneDNNConvolution? {
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let cached = cache[shape] { return cached }
        OneDNN.stayOnThisThread()  // creating primitives runs parallel loops too
        let created = try? OneDNNConvolution(shape)
        cache[shape] = created
        return created
    }
}
