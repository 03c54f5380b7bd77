import CMPI
import Foundation
import Tensors

/// An MPI error with the operation that failed and MPI's own description.
public struct CommunicatorError: Error, CustomStringConvertible {
    public let operation: String
    public let code: Int32
    public let message: String

    public var description: String { "\(operation) failed: \(message) (MPI error \(code))" }
}

/// Element types the communicator moves.
public protocol CommunicatorScalar {
    static var mpiType: MPI_Datatype { get }
}

extension Float: CommunicatorScalar { public static var mpiType: MPI_Datatype { cmpi_float() } }
extension Double: CommunicatorScalar { public static var mpiType: MPI_Datatype { cmpi_double() } }
extension Int: CommunicatorScalar { public static var mpiType: MPI_Datatype { cmpi_int64() } }
extension Int32: CommunicatorScalar { public static var mpiType: MPI_Datatype { cmpi_int32() } }
extension UInt8: CommunicatorScalar { public static var mpiType: MPI_Datatype { cmpi_byte() } }

/// A Swift view of an MPI communicator: rank, size, split, barrier, broadcast, in-place
/// allreduce (sum, max), allgather, tagged point-to-point messages. MPI errors come back as
/// thrown `CommunicatorError`s (the communicator uses MPI_ERRORS_RETURN). Without mpirun the
/// world has one rank and every collective is a local no-op, so the same code runs everywhere.
///
/// Every blocking call is registered with `CommunicationActivity` while it runs, so the
/// watchdog can name an operation that hangs, and collectives carry a per-communicator
/// sequence number, so ranks can tell whether they wait in the same one.
public final class Communicator: @unchecked Sendable {
    public enum ReduceOperation { case sum, max }

    let handle: MPI_Comm
    public let rank: Int
    public let size: Int
    /// A name for messages ("world", "students", "gradients", ...).
    public let name: String
    /// The world rank of each member, by rank in this communicator.
    public let worldRanks: [Int]
    /// Collectives issued so far. No lock: MPI requires the collectives of one communicator to
    /// be issued one at a time, in the same order on every rank.
    private var collectiveSequence = 0

    /// MPI_COMM_WORLD (initialising MPI with MPI_THREAD_MULTIPLE on first use).
    public static let world: Communicator = {
        MPIProcess.initialize()
        return Communicator(handle: cmpi_comm_world(), name: "world")
    }()

    init(handle: MPI_Comm, name: String) {
        self.handle = handle
        self.name = name
        var rank: Int32 = 0, size: Int32 = 0
        MPI_Comm_rank(handle, &rank)
        MPI_Comm_size(handle, &size)
        self.rank = Int(rank)
        self.size = Int(size)
        MPI_Comm_set_errhandler(handle, cmpi_errors_return())
        // Translate member ranks to world ranks (a local query, no communication).
        var group: MPI_Group?, worldGroup: MPI_Group?
        MPI_Comm_group(handle, &group)
        MPI_Comm_group(cmpi_comm_world(), &worldGroup)
        var local = (0..<Int32(size)).map { $0 }
        var translated = [Int32](repeating: 0, count: Int(size))
        MPI_Group_translate_ranks(group, size, &local, worldGroup, &translated)
        MPI_Group_free(&group)
        MPI_Group_free(&worldGroup)
        worldRanks = translated.map(Int.init)
    }

    /// Runs one blocking MPI call registered with the activity tracker; collectives get the next sequence number.
    @inline(__always)
    private func tracked<R>(
        _ operation: String, collective: Bool, peer: Int? = nil, context: String?, _ body: () throws -> R
    ) rethrows -> R {
        var sequence = -1
        if collective {
            collectiveSequence += 1
            sequence = collectiveSequence
        }
        let token = CommunicationActivity.shared.begin(
            CommunicationActivity.Operation(
                communicator: name, sequence: sequence, operation: operation, context: context,
                participants: peer.map { [worldRanks[$0]] } ?? worldRanks))
        defer { CommunicationActivity.shared.end(token) }
        return try body()
    }

    /// A new communicator with the same members, for traffic that must not interleave with this one's.
    public func duplicate(name: String) throws -> Communicator {
        var newHandle = cmpi_comm_null()
        try tracked("MPI_Comm_dup", collective: true, context: name) {
            try Self.check(MPI_Comm_dup(handle, &newHandle), "MPI_Comm_dup(\(self.name) as \(name))")
        }
        return Communicator(handle: newHandle!, name: name)
    }

    /// Ends every process of the job (MPI_Abort on this communicator); mpirun reports the code.
    public func abort(code: Int32) -> Never {
        MPI_Abort(handle, code)
        exit(code)
    }

    static func check(_ code: Int32, _ operation: @autoclosure () -> String) throws {
        guard code != 0 else { return }
        var buffer = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        throw CommunicatorError(operation: operation(), code: code, message: String(cString: buffer))
    }

    /// Ranks with the same `color` form a new communicator, ordered by `key`.
    public func split(color: Int, key: Int, name: String) throws -> Communicator {
        var newHandle = cmpi_comm_null()
        try tracked("MPI_Comm_split", collective: true, context: name) {
            try Self.check(
                MPI_Comm_split(handle, Int32(color), Int32(key), &newHandle), "MPI_Comm_split(color \(color))")
        }
        return Communicator(handle: newHandle!, name: name)
    }

    public func barrier(context: String? = nil) throws {
        try tracked("MPI_Barrier", collective: true, context: context) {
            try Self.check(MPI_Barrier(handle), "MPI_Barrier on \(name)")
        }
    }

    public func broadcast<T: CommunicatorScalar>(
        _ buffer: UnsafeMutableBufferPointer<T>, root: Int, context: String? = nil
    ) throws {
        guard size > 1, buffer.count > 0 else { return }
        try tracked("MPI_Bcast", collective: true, context: context) {
            try Self.check(
                MPI_Bcast(buffer.baseAddress, Int32(buffer.count), T.mpiType, Int32(root), handle),
                "MPI_Bcast(\(buffer.count) elements from rank \(root) on \(name))")
        }
    }

    public func broadcast<T: CommunicatorScalar>(_ values: inout [T], root: Int, context: String? = nil) throws {
        try values.withUnsafeMutableBufferPointer { try broadcast($0, root: root, context: context) }
    }

    /// Replaces `buffer` by its elementwise reduction over all ranks.
    public func allreduce<T: CommunicatorScalar>(
        _ buffer: UnsafeMutableBufferPointer<T>, _ operation: ReduceOperation = .sum, context: String? = nil
    ) throws {
        guard size > 1, buffer.count > 0 else { return }
        let op = operation == .sum ? cmpi_op_sum() : cmpi_op_max()
        try tracked("MPI_Allreduce", collective: true, context: context) {
            try Self.check(
                MPI_Allreduce(cmpi_in_place(), buffer.baseAddress, Int32(buffer.count), T.mpiType, op, handle),
                "MPI_Allreduce(\(buffer.count) elements on \(name))")
        }
    }

    public func allreduce<T: CommunicatorScalar>(
        _ values: inout [T], _ operation: ReduceOperation = .sum, context: String? = nil
    ) throws {
        try values.withUnsafeMutableBufferPointer { try allreduce($0, operation, context: context) }
    }

    /// Allreduce in place of `count` 16-bit words under a user-defined `operation` (the
    /// bfloat16 sum of `BF16Compression`).
    public func allreduceWords(
        _ words: UnsafeMutablePointer<UInt16>, count: Int, operation: MPI_Op, context: String? = nil
    ) throws {
        guard size > 1, count > 0 else { return }
        try tracked("MPI_Allreduce", collective: true, context: context) {
            try Self.check(
                MPI_Allreduce(cmpi_in_place(), words, Int32(count), cmpi_uint16(), operation, handle),
                "MPI_Allreduce(\(count) bfloat16 words on \(name))")
        }
    }

    /// Reduce-scatter in place: `buffer` holds size x `block` elements on every rank; afterwards
    /// its first `block` elements are this rank's block (rank r's is block r of the input)
    /// reduced over all ranks. The first half of a ring allreduce, as ZeRO's gradient step.
    public func reduceScatter<T: CommunicatorScalar>(
        _ buffer: UnsafeMutableBufferPointer<T>, block: Int, _ operation: ReduceOperation = .sum,
        context: String? = nil
    ) throws {
        ensure(
            block >= 0 && buffer.count >= block * size,
            "reduceScatter: \(buffer.count) elements for \(size) blocks of \(block)")
        guard size > 1, block > 0 else { return }
        let op = operation == .sum ? cmpi_op_sum() : cmpi_op_max()
        try tracked("MPI_Reduce_scatter_block", collective: true, context: context) {
            try Self.check(
                MPI_Reduce_scatter_block(cmpi_in_place(), buffer.baseAddress, Int32(block), T.mpiType, op, handle),
                "MPI_Reduce_scatter_block(\(block) x \(size) elements on \(name))")
        }
    }

    /// All-gather in place: block r of `buffer` (size x `block` elements) comes from rank r,
    /// whose own block is already in place. The second half of a ring allreduce.
    public func allgather<T: CommunicatorScalar>(
        inPlace buffer: UnsafeMutableBufferPointer<T>, block: Int, context: String? = nil
    ) throws {
        ensure(
            block >= 0 && buffer.count >= block * size,
            "allgather: \(buffer.count) elements for \(size) blocks of \(block)")
        guard size > 1, block > 0 else { return }
        try tracked("MPI_Allgather", collective: true, context: context) {
            try Self.check(
                MPI_Allgather(cmpi_in_place(), 0, T.mpiType, buffer.baseAddress, Int32(block), T.mpiType, handle),
                "MPI_Allgather(\(block) x \(size) elements on \(name), in place)")
        }
    }

    /// Reduce-scatter with uneven blocks: rank r receives in `receive` the sum over all ranks of
    /// the `counts[r]` elements of `send` that follow the blocks of ranks 0..<r (MPI_Reduce_scatter).
    public func reduceScatter<T: CommunicatorScalar>(
        _ send: UnsafeBufferPointer<T>, counts: [Int], into receive: UnsafeMutablePointer<T>,
        context: String? = nil
    ) throws {
        ensure(
            counts.count == size && counts.reduce(0, +) <= send.count,
            "reduceScatter: counts \(counts) for \(send.count) elements on \(size) ranks")
        guard size > 1 else {
            receive.update(from: send.baseAddress!, count: counts[0])
            return
        }
        let counts32 = counts.map(Int32.init)
        try tracked("MPI_Reduce_scatter", collective: true, context: context) {
            try Self.check(
                MPI_Reduce_scatter(send.baseAddress, receive, counts32, T.mpiType, cmpi_op_sum(), handle),
                "MPI_Reduce_scatter(\(counts.reduce(0, +)) elements over \(size) ranks on \(name))")
        }
    }

    /// All-gather in place with uneven blocks: the `counts[r]` elements at `displacements[r]` of
    /// `buffer` come from rank r, whose own block is already in place (MPI_Allgatherv).
    public func allgather<T: CommunicatorScalar>(
        inPlace buffer: UnsafeMutablePointer<T>, counts: [Int], displacements: [Int], context: String? = nil
    ) throws {
        ensure(
            counts.count == size && displacements.count == size,
            "allgather: \(counts.count) counts and \(displacements.count) displacements on \(size) ranks")
        guard size > 1 else { return }
        let counts32 = counts.map(Int32.init), displacements32 = displacements.map(Int32.init)
        try tracked("MPI_Allgatherv", collective: true, context: context) {
            try Self.check(
                MPI_Allgatherv(cmpi_in_place(), 0, T.mpiType, buffer, counts32, displacements32, T.mpiType, handle),
                "MPI_Allgatherv(\(counts.reduce(0, +)) elements over \(size) ranks on \(name), in place)")
        }
    }

    /// Every rank's `values` (all the same, non-zero count), concatenated in rank order.
    public func allgather<T: CommunicatorScalar>(_ values: [T], context: String? = nil) throws -> [T] {
        guard size > 1, let first = values.first else { return values }
        var result = [T](repeating: first, count: values.count * size)
        try tracked("MPI_Allgather", collective: true, context: context) {
            try values.withUnsafeBufferPointer { send in
                try result.withUnsafeMutableBufferPointer { receive in
                    try Self.check(
                        MPI_Allgather(
                            send.baseAddress, Int32(values.count), T.mpiType, receive.baseAddress, Int32(values.count),
                            T.mpiType, handle),
                        "MPI_Allgather(\(values.count) elements on \(name))")
                }
            }
        }
        return result
    }

    public func send<T: CommunicatorScalar>(
        _ buffer: UnsafeBufferPointer<T>, to destination: Int, tag: Int, context: String? = nil
    ) throws {
        try tracked("MPI_Send", collective: false, peer: destination, context: context) {
            try Self.check(
                MPI_Send(buffer.baseAddress, Int32(buffer.count), T.mpiType, Int32(destination), Int32(tag), handle),
                "MPI_Send(\(buffer.count) elements to rank \(destination), tag \(tag))")
        }
    }

    public func receive<T: CommunicatorScalar>(
        _ buffer: UnsafeMutableBufferPointer<T>, from source: Int, tag: Int, context: String? = nil
    ) throws {
        try tracked("MPI_Recv", collective: false, peer: source, context: context) {
            try Self.check(
                MPI_Recv(
                    buffer.baseAddress, Int32(buffer.count), T.mpiType, Int32(source), Int32(tag), handle,
                    cmpi_status_ignore()),
                "MPI_Recv(\(buffer.count) elements from rank \(source), tag \(tag))")
        }
    }

    /// A message waiting to be received with `tag` (from any rank): its source and element count.
    public func probe<T: CommunicatorScalar>(tag: Int, as type: T.Type) throws -> (source: Int, count: Int)? {
        var flag: Int32 = 0
        var status = MPI_Status()
        try Self.check(MPI_Iprobe(cmpi_any_source(), Int32(tag), handle, &flag, &status), "MPI_Iprobe(tag \(tag))")
        guard flag != 0 else { return nil }
        var count: Int32 = 0
        MPI_Get_count(&status, T.mpiType, &count)
        return (Int(status.MPI_SOURCE), Int(count))
    }

    /// A nonblocking operation; the buffer must stay alive until `wait` or a successful `test`.
    public final class Request {
        var handle: MPI_Request?
        let description: String
        let peer: Int

        init(handle: MPI_Request?, description: String, peer: Int) {
            self.handle = handle
            self.description = description
            self.peer = peer
        }

        /// Waits for completion; `context` names what is awaited for the watchdog's report.
        public func wait(context: String? = nil) throws {
            let token = CommunicationActivity.shared.begin(
                CommunicationActivity.Operation(
                    communicator: "point-to-point", sequence: -1, operation: "MPI_Wait(\(description))",
                    context: context, participants: [peer]))
            defer { CommunicationActivity.shared.end(token) }
            try Communicator.check(MPI_Wait(&handle, cmpi_status_ignore()), "MPI_Wait(\(description))")
        }

        /// Whether the operation has completed.
        public func test() throws -> Bool {
            var flag: Int32 = 0
            try Communicator.check(MPI_Test(&handle, &flag, cmpi_status_ignore()), "MPI_Test(\(description))")
            return flag != 0
        }
    }

    public func sendAsync<T: CommunicatorScalar>(_ buffer: UnsafeBufferPointer<T>, to destination: Int, tag: Int) throws
        -> Request
    {
        var request = cmpi_request_null()
        let description = "MPI_Isend(\(buffer.count) elements to rank \(destination), tag \(tag))"
        try Self.check(
            MPI_Isend(
                buffer.baseAddress, Int32(buffer.count), T.mpiType, Int32(destination), Int32(tag), handle, &request),
            description)
        return Request(handle: request, description: description, peer: worldRanks[destination])
    }

    public func receiveAsync<T: CommunicatorScalar>(_ buffer: UnsafeMutableBufferPointer<T>, from source: Int, tag: Int)
        throws -> Request
    {
        var request = cmpi_request_null()
        let description = "MPI_Irecv(\(buffer.count) elements from rank \(source), tag \(tag))"
        try Self.check(
            MPI_Irecv(buffer.baseAddress, Int32(buffer.count), T.mpiType, Int32(source), Int32(tag), handle, &request),
            description)
        return Request(handle: request, description: description, peer: worldRanks[source])
    }
}

extension Communicator {
    /// MPI_Allreduce called directly, bypassing the wrapper: the baseline of `sfkd bench allreduce`.
    public func directAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) -> Int32 {
        MPI_Allreduce(cmpi_in_place(), buffer, Int32(count), cmpi_float(), cmpi_op_sum(), handle)
    }
}
