import Foundation

/// The blocking MPI operations this process is in right now, with when they started. The
/// communicator registers every call; the watchdog reads it to find a hang and to answer
/// other ranks asking what this one is doing.
public final class CommunicationActivity: @unchecked Sendable {
    public struct Operation: Sendable {
        /// The communicator's name ("students", "gradients", ...) or "point-to-point".
        public var communicator: String
        /// The collective's number on its communicator (the same on every rank), -1 for point-to-point.
        public var sequence: Int
        public var operation: String
        /// What the caller is doing ("gradient bucket 2 of 3, step 17").
        public var context: String?
        /// World ranks that must take part (all members for a collective, the peer otherwise).
        public var participants: [Int]
        public var started = Date()

        public var summary: String {
            let what = sequence >= 0 ? "\(operation) #\(sequence) on '\(communicator)'" : operation
            return context.map { "\(what) (\($0))" } ?? what
        }
    }

    public static let shared = CommunicationActivity()

    private let lock = NSLock()
    private var running: [Int: Operation] = [:]
    private var nextToken = 0
    /// The last operation that finished, for reports about ranks that are not in any.
    private var lastFinished: Operation?

    public func begin(_ operation: Operation) -> Int {
        lock.lock()
        defer { lock.unlock() }
        nextToken += 1
        running[nextToken] = operation
        return nextToken
    }

    public func end(_ token: Int) {
        lock.lock()
        defer { lock.unlock() }
        lastFinished = running.removeValue(forKey: token)
    }

    public var current: [Operation] {
        lock.lock()
        defer { lock.unlock() }
        return running.values.sorted { $0.started < $1.started }
    }

    public var last: Operation? {
        lock.lock()
        defer { lock.unlock() }
        return lastFinished
    }
}
