import Foundation

/// Turns a hung MPI operation into an error instead of a silent hang. A thread checks the
/// running operations every 200 ms; one older than `timeout` makes this rank ask every other
/// rank (over a private duplicate of the world) what it is doing, print the operation, its
/// context and the ranks still missing from it, and abort the whole job. The same thread
/// answers such questions from other ranks, so a rank stuck in computation, or waiting
/// elsewhere, still reports where it is; a rank that does not answer at all is stopped or hung.
public final class CommunicationWatchdog: @unchecked Sendable {
    static let queryTag = 1
    static let replyTag = 2
    static let replyBytes = 4096

    public let timeout: TimeInterval
    let control: Communicator
    private let rank: Int
    private var thread: Thread?
    private let stopLock = NSLock()
    private var stopping = false
    private let stopped = DispatchSemaphore(value: 0)
    /// Keeps query sends alive until they complete (a stopped peer never receives them).
    private var pendingReplies: [(Communicator.Request, [UInt8])] = []
    /// The exit code after a report (mpirun passes it on).
    private let abortCode: Int32 = 3

    public init(world: Communicator, timeout: TimeInterval) throws {
        self.timeout = timeout
        control = try world.duplicate(name: "watchdog")
        rank = world.rank
        guard world.size > 1 else { return }
        let thread = Thread { [weak self] in
            self?.loop()
            self?.stopped.signal()
        }
        thread.name = "sfkd-watchdog"
        self.thread = thread
        thread.start()
        // The thread polls MPI; it must be gone before MPI_Finalize.
        MPIProcess.beforeFinalize { [weak self] in self?.stop() }
    }

    /// Ends the watchdog thread and waits for it.
    public func stop() {
        stopLock.lock()
        let wasRunning = thread != nil && !stopping
        stopping = true
        stopLock.unlock()
        if wasRunning { stopped.wait() }
    }

    private var shouldStop: Bool {
        stopLock.lock()
        defer { stopLock.unlock() }
        return stopping
    }

    private func loop() {
        while !shouldStop {
            Thread.sleep(forTimeInterval: 0.2)
            if shouldStop { return }
            do {
                try answerQueries()
                if let stuck = CommunicationActivity.shared.current.first, stuck.seconds > timeout {
                    report(stuck)
                }
            } catch {
                FileHandle.standardError.write("sfkd rank \(rank): watchdog: \(error)\n".data(using: .utf8)!)
                return
            }
        }
    }

    /// What this rank is doing, one line per running operation (or what it did last).
    private func describeSelf() -> String {
        let running = CommunicationActivity.shared.current
        if running.isEmpty {
            let last = CommunicationActivity.shared.last.map { "last finished \($0.summary)" } ?? "no MPI operation yet"
            return "idle\t-1\t0\tnot in any MPI operation (computing or doing I/O); \(last)"
        }
        return running.map { "\($0.communicator)\t\($0.sequence)\t\(Int($0.seconds))\t\($0.summary)" }.joined(
            separator: "\n")
    }

    private func answerQueries() throws {
        while let (source, _) = try control.probe(tag: Self.queryTag, as: Int.self) {
            var query = [0]
            try query.withUnsafeMutableBufferPointer { try control.receive($0, from: source, tag: Self.queryTag) }
            var bytes = Array(describeSelf().utf8.prefix(Self.replyBytes))
            if bytes.isEmpty { bytes = [32] }
            let request = try bytes.withUnsafeBufferPointer {
                try control.sendAsync($0, to: source, tag: Self.replyTag)
            }
            pendingReplies.append((request, bytes))
        }
        pendingReplies.removeAll { (try? $0.0.test()) ?? true }
    }

    private func report(_ stuck: CommunicationActivity.Operation) -> Never {
        var lines = [
            "sfkd rank \(rank): \(stuck.summary) has waited \(Int(stuck.seconds)) s, longer than --comm-timeout \(Int(timeout)) s."
        ]
        let peers = stuck.participants.filter { $0 != rank }
        // Requests and their message arrays stay referenced until the abort (MPI reads the arrays' storage).
        var queries: [(Communicator.Request, [Int])] = []
        for peer in peers {
            let message = [rank]
            if let request = try? message.withUnsafeBufferPointer({
                try control.sendAsync($0, to: peer, tag: Self.queryTag)
            }) {
                queries.append((request, message))
            }
        }
        // Collect answers for a few seconds, answering other ranks' questions meanwhile.
        var answers: [Int: String] = [:]
        let deadline = Date().addingTimeInterval(5)
        while answers.count < peers.count && Date() < deadline {
            try? answerQueries()
            while let (source, count) = try? control.probe(tag: Self.replyTag, as: UInt8.self) {
                var buffer = [UInt8](repeating: 0, count: max(count, 1))
                try? buffer.withUnsafeMutableBufferPointer { try control.receive($0, from: source, tag: Self.replyTag) }
                answers[source] = String(decoding: buffer.prefix(count), as: UTF8.self)
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        var missing: [String] = []
        for peer in peers {
            guard let answer = answers[peer] else {
                missing.append("rank \(peer) (no answer within 5 s: stopped, hung or unreachable)")
                continue
            }
            let operations = answer.split(separator: "\n").map {
                $0.split(separator: "\t", maxSplits: 3).map(String.init)
            }
            let inSameOperation =
                stuck.sequence >= 0
                && operations.contains { $0.count == 4 && $0[0] == stuck.communicator && Int($0[1]) == stuck.sequence }
            if !inSameOperation {
                let doing = operations.map {
                    $0.count == 4 ? $0[3] + ($0[0] == "idle" ? "" : " for \($0[2]) s") : $0.joined(separator: " ")
                }.joined(separator: "; ")
                missing.append("rank \(peer) (\(doing))")
            }
        }
        lines.append(
            missing.isEmpty
                ? "Every other rank is in this operation too; the interconnect may be failing."
                : "Ranks still missing: " + missing.joined(separator: ", ") + ".")
        lines.append("Aborting the job; resume from the last complete checkpoint with --resume.")
        FileHandle.standardError.write((lines.joined(separator: "\n") + "\n").data(using: .utf8)!)
        withExtendedLifetime(queries) { control.abort(code: abortCode) }
    }
}
