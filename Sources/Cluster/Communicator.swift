import CMPI
import Foundation
import Runtime

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
public final class Communicator: @unchecked Sendable {
    public enum ReduceOperation { case sum, max }

    let handle: MPI_Comm
    public let rank: Int
    public let size: Int

    /// MPI_COMM_WORLD (initialising MPI with MPI_THREAD_MULTIPLE on first use).
    public static let world: Communicator = {
        MPIProcess.initialize()
        return Communicator(handle: cmpi_comm_world())
    }()

    init(handle: MPI_Comm) {
        self.handle = handle
        var rank: Int32 = 0, size: Int32 = 0
        MPI_Comm_rank(handle, &rank)
        MPI_Comm_size(handle, &size)
        self.rank = Int(rank)
        self.size = Int(size)
        MPI_Comm_set_errhandler(handle, cmpi_errors_return())
    }

    static func check(_ code: Int32, _ operation: @autoclosure () -> String) throws {
        guard code != 0 else { return }
        var buffer = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        throw CommunicatorError(operation: operation(), code: code, message: String(cString: buffer))
    }

    /// Ranks with the same `color` form a new communicator, ordered by `key`.
    public func split(color: Int, key: Int) throws -> Communicator {
        var newHandle = cmpi_comm_null()
        try Self.check(MPI_Comm_split(handle, Int32(color), Int32(key), &newHandle), "MPI_Comm_split(color \(color))")
        return Communicator(handle: newHandle!)
    }

    public func barrier() throws {
        try Self.check(MPI_Barrier(handle), "MPI_Barrier")
    }

    public func broadcast<T: CommunicatorScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        guard size > 1, buffer.count > 0 else { return }
        try Self.check(MPI_Bcast(buffer.baseAddress, Int32(buffer.count), T.mpiType, Int32(root), handle), "MPI_Bcast(\(buffer.count) elements from rank \(root))")
    }

    /// Replaces `buffer` by its elementwise reduction over all ranks.
    public func allreduce<T: CommunicatorScalar>(_ buffer: UnsafeMutableBufferPointer<T>, _ operation: ReduceOperation = .sum) throws {
        guard size > 1, buffer.count > 0 else { return }
        let op = operation == .sum ? cmpi_op_sum() : cmpi_op_max()
        try Self.check(MPI_Allreduce(cmpi_in_place(), buffer.baseAddress, Int32(buffer.count), T.mpiType, op, handle),
                       "MPI_Allreduce(\(buffer.count) elements)")
    }

    public func allreduce<T: CommunicatorScalar>(_ values: inout [T], _ operation: ReduceOperation = .sum) throws {
        try values.withUnsafeMutableBufferPointer { try allreduce($0, operation) }
    }

    /// Every rank's `values` (all the same, non-zero count), concatenated in rank order.
    public func allgather<T: CommunicatorScalar>(_ values: [T]) throws -> [T] {
        guard size > 1, let first = values.first else { return values }
        var result = [T](repeating: first, count: values.count * size)
        try values.withUnsafeBufferPointer { send in
            try result.withUnsafeMutableBufferPointer { receive in
                try Self.check(MPI_Allgather(send.baseAddress, Int32(values.count), T.mpiType, receive.baseAddress, Int32(values.count), T.mpiType, handle),
                               "MPI_Allgather(\(values.count) elements)")
            }
        }
        return result
    }

    public func send<T: CommunicatorScalar>(_ buffer: UnsafeBufferPointer<T>, to destination: Int, tag: Int) throws {
        try Self.check(MPI_Send(buffer.baseAddress, Int32(buffer.count), T.mpiType, Int32(destination), Int32(tag), handle),
                       "MPI_Send(\(buffer.count) elements to rank \(destination), tag \(tag))")
    }

    public func receive<T: CommunicatorScalar>(_ buffer: UnsafeMutableBufferPointer<T>, from source: Int, tag: Int) throws {
        try Self.check(MPI_Recv(buffer.baseAddress, Int32(buffer.count), T.mpiType, Int32(source), Int32(tag), handle, cmpi_status_ignore()),
                       "MPI_Recv(\(buffer.count) elements from rank \(source), tag \(tag))")
    }

    /// A nonblocking operation; the buffer must stay alive until `wait` or a successful `test`.
    public final class Request {
        var handle: MPI_Request?
        let description: String

        init(handle: MPI_Request?, description: String) {
            self.handle = handle
            self.description = description
        }

        public func wait() throws {
            try Communicator.check(MPI_Wait(&handle, cmpi_status_ignore()), "MPI_Wait(\(description))")
        }

        /// Whether the operation has completed.
        public func test() throws -> Bool {
            var flag: Int32 = 0
            try Communicator.check(MPI_Test(&handle, &flag, cmpi_status_ignore()), "MPI_Test(\(description))")
            return flag != 0
        }
    }

    public func sendAsync<T: CommunicatorScalar>(_ buffer: UnsafeBufferPointer<T>, to destination: Int, tag: Int) throws -> Request {
        var request = cmpi_request_null()
        let description = "MPI_Isend(\(buffer.count) elements to rank \(destination), tag \(tag))"
        try Self.check(MPI_Isend(buffer.baseAddress, Int32(buffer.count), T.mpiType, Int32(destination), Int32(tag), handle, &request), description)
        return Request(handle: request, description: description)
    }

    public func receiveAsync<T: CommunicatorScalar>(_ buffer: UnsafeMutableBufferPointer<T>, from source: Int, tag: Int) throws -> Request {
        var request = cmpi_request_null()
        let description = "MPI_Irecv(\(buffer.count) elements from rank \(source), tag \(tag))"
        try Self.check(MPI_Irecv(buffer.baseAddress, Int32(buffer.count), T.mpiType, Int32(source), Int32(tag), handle, &request), description)
        return Request(handle: request, description: description)
    }
}

extension Communicator {
    /// MPI_Allreduce called directly, bypassing the wrapper: the baseline of `sfkd bench allreduce`.
    public func directAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) -> Int32 {
        MPI_Allreduce(cmpi_in_place(), buffer, Int32(count), cmpi_float(), cmpi_op_sum(), handle)
    }
}
