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
        /// Uptime in nanoseconds (cheaper than `Date` on every collective).
        public var started = DispatchTime.now().uptimeNanoseconds

        /// Seconds since the operation started.
        public var seconds: Double { Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9 }

        public var summary: String {
            let what = sequence >= 0 ? "\(operation) #\(sequence) on '\(communicator)'" : operation
            return context.map { "\(what) (\($0))" } ?? what
        }
    }

    public static let shared = CommunicationActivity()

    // A few fixed slots (one per thread in MPI at a time: the training, communication and
    // watchdog threads) instead of a dictionary: begin/end sit on every collective's path.
    private let lock = NSLock()
    private var slots: [Operation?] = Array(repeating: nil, count: 16)
    private var active = [Bool](repeating: false, count: 16)
    /// The slot of the operation that finished last, for reports about ranks in none.
    private var lastFinishedSlot = -1

    public func begin(_ operation: Operation) -> Int {
        lock.lock()
        defer { lock.unlock() }
        var slot = 0
        while slot < active.count && active[slot] { slot += 1 }
        if slot == active.count {
            slots.append(nil)
            active.append(false)
        }
        slots[slot] = operation
        active[slot] = true
        return slot
    }

    public func end(_ token: Int) {
        lock.lock()
        active[token] = false
        lastFinishedSlot = token
        lock.unlock()
    }

    public var current: [Operation] {
        lock.lock()
        defer { lock.unlock() }
        return slots.indices.filter { active[$0] }.compactMap { slots[$0] }.sorted { $0.started < $1.started }
    }

    public var last: Operation? {
        lock.lock()
        defer { lock.unlock() }
        return lastFinishedSlot >= 0 && !active[lastFinishedSlot] ? slots[lastFinishedSlot] : nil
    }
}
