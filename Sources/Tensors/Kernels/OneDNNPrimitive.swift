import CDNNL
import Foundation

/// One oneDNN primitive with the layouts it asked for: the arguments arrive and leave in sfkd's
/// plain layouts (NCHW, OIHW), and each one whose layout the primitive chose differently
/// (a blocked nChw16c, say) goes through a reorder on the way in or out.
///
/// Created once per shape (creation takes milliseconds) and executed from any thread: each
/// execution brings its own memory objects, stream and scratchpad, so nothing is shared.
final class OneDNNPrimitive: @unchecked Sendable {
    struct Argument {
        let name: Int32
        let plain: dnnl_memory_desc_t
        let chosen: dnnl_memory_desc_t
        /// plain -> chosen for an input, chosen -> plain for an output; nil when they agree.
        let reorder: dnnl_primitive_t?
        let isOutput: Bool
        var chosenFloats: Int { (withUnsafePointer(to: chosen) { dnnl_memory_desc_get_size($0) } + 3) / 4 }
    }

    let descriptor: dnnl_primitive_desc_t
    let primitive: dnnl_primitive_t
    let arguments: [Argument]
    let scratchpad: dnnl_memory_desc_t
    let scratchpadFloats: Int

    /// The implementation oneDNN picked ("jit:avx512_core", "gemm:jit", ...).
    var implementation: String {
        var name: UnsafePointer<CChar>? = nil
        guard dnnl_primitive_desc_query(descriptor, dnnl_query_impl_info_str, 0, &name) == dnnl_success, let name
        else { return "unknown" }
        return String(cString: name)
    }

    /// What the primitive takes: the argument's name, its plain layout, the query (and index)
    /// that gives the layout the primitive chose, and whether the primitive writes it.
    struct Slot {
        let name: Int32
        let plain: dnnl_memory_desc_t
        let query: dnnl_query_t
        var index: Int32 = 0
        var isOutput = false
    }

    init(descriptor: dnnl_primitive_desc_t, arguments: [Slot]) throws {
        self.descriptor = descriptor
        var primitive: dnnl_primitive_t? = nil
        try OneDNN.check(dnnl_primitive_create(&primitive, descriptor), "creating a primitive")
        self.primitive = primitive!
        self.arguments = try arguments.map { slot in
            let (plain, isOutput) = (slot.plain, slot.isOutput)
            let chosen = dnnl_primitive_desc_query_md(descriptor, slot.query, slot.index)!.pointee
            var reorder: dnnl_primitive_t? = nil
            if !Self.equal(plain, chosen) {
                var reorderDescriptor: dnnl_primitive_desc_t? = nil
                var from = isOutput ? chosen : plain, to = isOutput ? plain : chosen
                try OneDNN.check(
                    dnnl_reorder_primitive_desc_create(
                        &reorderDescriptor, &from, OneDNN.engine, &to, OneDNN.engine, nil),
                    "creating a reorder")
                defer { dnnl_primitive_desc_destroy(reorderDescriptor) }
                try OneDNN.check(dnnl_primitive_create(&reorder, reorderDescriptor), "creating a reorder")
            }
            return Argument(name: slot.name, plain: plain, chosen: chosen, reorder: reorder, isOutput: isOutput)
        }
        scratchpad = dnnl_primitive_desc_query_md(descriptor, dnnl_query_scratchpad_md, 0)!.pointee
        scratchpadFloats = (withUnsafePointer(to: scratchpad) { dnnl_memory_desc_get_size($0) } + 3) / 4
    }

    deinit {
        for argument in arguments { if let reorder = argument.reorder { dnnl_primitive_destroy(reorder) } }
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(descriptor)
    }

    static func equal(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
        withUnsafePointer(to: a) { a in withUnsafePointer(to: b) { b in dnnl_memory_desc_equal(a, b) != 0 } }
    }

    /// Whether argument `index` takes the same layout here as in `other` (primitives of one
    /// convolution for different image counts): then one reorder of it serves both.
    func choosesLike(_ other: OneDNNPrimitive, argument index: Int) -> Bool {
        Self.equal(arguments[index].chosen, other.arguments[index].chosen)
    }

    /// Input `index` at `pointer` in the layout (and type) this primitive chose, for several
    /// executions to share (the weights, read by every share of a batch); nil where that is the
    /// plain layout already.
    func chosenCopy(ofInput index: Int, _ pointer: UnsafePointer<Float>) -> Tensor? {
        let argument = arguments[index]
        guard let reorder = argument.reorder, !argument.isOutput else { return nil }
        let buffer = Tensor(uninitializedShape: [argument.chosenFloats])
        withStream { stream, memory in
            run(
                reorder, from: memory(argument.plain, UnsafeMutableRawPointer(mutating: pointer)),
                to: memory(argument.chosen, buffer.data), stream: stream)
        }
        return buffer
    }

    /// Floats of argument `index` in the chosen layout (padding included).
    func chosenCount(_ index: Int) -> Int { arguments[index].chosenFloats }

    /// Output `index` from its chosen layout at `buffer` into plain `target`.
    func copyToPlain(output index: Int, _ buffer: UnsafeMutablePointer<Float>, into target: UnsafeMutablePointer<Float>)
    {
        let argument = arguments[index]
        guard let reorder = argument.reorder else {
            target.update(from: buffer, count: argument.chosenFloats)
            return
        }
        withStream { stream, memory in
            run(reorder, from: memory(argument.chosen, buffer), to: memory(argument.plain, target), stream: stream)
        }
    }

    /// A stream and a way to make memory objects, all released afterwards.
    private func withStream(
        _ body: (dnnl_stream_t?, (dnnl_memory_desc_t, UnsafeMutableRawPointer) -> dnnl_memory_t) -> Void
    ) {
        OneDNN.stayOnThisThread()
        var stream: dnnl_stream_t? = nil
        OneDNN.mustSucceed(dnnl_stream_create(&stream, OneDNN.engine, dnnl_stream_default_flags.rawValue), "a stream")
        var memories: [dnnl_memory_t?] = []
        defer {
            for memory in memories { dnnl_memory_destroy(memory) }
            dnnl_stream_destroy(stream)
        }
        body(stream) { descriptor, pointer in
            var memory: dnnl_memory_t? = nil
            var descriptor = descriptor
            OneDNN.mustSucceed(dnnl_memory_create(&memory, &descriptor, OneDNN.engine, pointer), "a memory object")
            memories.append(memory)
            return memory!
        }
        dnnl_stream_wait(stream)
    }

    /// Runs the primitive on the calling thread with `pointers` (one per argument, in the
    /// order of `arguments`), in plain layouts except the arguments in `chosenLayout`, which
    /// are in the layout the primitive chose (`chosenCopy`, a buffer of `chosenCount` floats).
    func execute(_ pointers: [UnsafeMutablePointer<Float>], chosenLayout: Set<Int> = []) {
        var temporaries: [Tensor] = []
        withStream { stream, memory in
            let scratch = Tensor(uninitializedShape: [max(scratchpadFloats, 1)])
            temporaries.append(scratch)
            var execution = [dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: memory(scratchpad, scratch.data))]
            var outputs: [(from: dnnl_memory_t, to: dnnl_memory_t, reorder: dnnl_primitive_t)] = []
            for (index, (argument, pointer)) in zip(arguments, pointers).enumerated() {
                if chosenLayout.contains(index) {
                    execution.append(dnnl_exec_arg_t(arg: argument.name, memory: memory(argument.chosen, pointer)))
                    continue
                }
                let plain = memory(argument.plain, pointer)
                guard let reorder = argument.reorder else {
                    execution.append(dnnl_exec_arg_t(arg: argument.name, memory: plain))
                    continue
                }
                let buffer = Tensor(uninitializedShape: [argument.chosenFloats])
                temporaries.append(buffer)
                let chosen = memory(argument.chosen, buffer.data)
                execution.append(dnnl_exec_arg_t(arg: argument.name, memory: chosen))
                if argument.isOutput {
                    outputs.append((chosen, plain, reorder))
                } else {
                    run(reorder, from: plain, to: chosen, stream: stream)
                }
            }
            OneDNN.mustSucceed(
                dnnl_primitive_execute(primitive, stream, Int32(execution.count), &execution), "executing a primitive")
            for output in outputs { run(output.reorder, from: output.from, to: output.to, stream: stream) }
        }
    }

    private func run(_ reorder: dnnl_primitive_t, from: dnnl_memory_t, to: dnnl_memory_t, stream: dnnl_stream_t?) {
        var arguments = [
            dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: from), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: to),
        ]
        OneDNN.mustSucceed(dnnl_primitive_execute(reorder, stream, 2, &arguments), "executing a reorder")
    }
}

extension OneDNN {
    /// The CPU engine every primitive runs on.
    nonisolated(unsafe) static let engine: dnnl_engine_t = {
        var engine: dnnl_engine_t? = nil
        mustSucceed(dnnl_engine_create(&engine, dnnl_cpu, 0), "the CPU engine")
        return engine!
    }()

    /// Attributes that make each primitive take its scratchpad from the caller (sfkd's buffer
    /// pool) instead of a buffer oneDNN would keep per thread.
    nonisolated(unsafe) static let userScratchpad: dnnl_primitive_attr_t = {
        var attributes: dnnl_primitive_attr_t? = nil
        mustSucceed(dnnl_primitive_attr_create(&attributes), "primitive attributes")
        mustSucceed(dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user), "scratchpad mode")
        return attributes!
    }()

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Throws on a status other than success (creating a primitive a shape does not support).
    static func check(_ status: dnnl_status_t, _ what: String) throws {
        guard status == dnnl_success else {
            throw Failure(description: "oneDNN: \(what) failed (status \(status.rawValue))")
        }
    }

    /// Stops on a status other than success where none can happen short of a broken library.
    static func mustSucceed(_ status: dnnl_status_t, _ what: String) {
        ensure(status == dnnl_success, "oneDNN: \(what) failed (status \(status.rawValue))")
    }

    /// A memory descriptor of `dims` in `tag`'s layout (float32 unless `type` says otherwise).
    static func plain(_ dims: [Int], _ tag: dnnl_format_tag_t, _ type: dnnl_data_type_t = dnnl_f32)
        -> dnnl_memory_desc_t
    {
        var descriptor = dnnl_memory_desc_t()
        let dims = dims.map(Int64.init)
        mustSucceed(
            dnnl_memory_desc_init_by_tag(&descriptor, Int32(dims.count), dims, type, tag), "a memory descriptor")
        return descriptor
    }

    /// A descriptor that lets the primitive choose the layout.
    static func any(_ dims: [Int], _ type: dnnl_data_type_t = dnnl_f32) -> dnnl_memory_desc_t {
        plain(dims, dnnl_format_tag_any, type)
    }
}
