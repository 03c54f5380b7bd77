/// Watches how much of the run the training loop spends waiting for its next batch, and says
/// so once when the loader cannot keep up (more than 10% of the time, past the first steps,
/// whose batches are built before any overlap can help).
public struct DataWaitMonitor {
    private var waited = 0.0, total = 0.0, steps = 0
    private var warned = false
    public static let threshold = 0.10
    public static let settleSteps = 10

    public init() {}

    public var fraction: Double { total > 0 ? waited / total : 0 }

    public mutating func add(_ wait: Double, step seconds: Double) {
        steps += 1
        guard steps > Self.settleSteps else { return }
        waited += wait
        total += seconds
    }

    /// The message, the first time the wait is past the threshold.
    public mutating func warning(loaderThreads: Int) -> String? {
        guard !warned, steps >= 2 * Self.settleSteps, fraction > Self.threshold else { return nil }
        warned = true
        return
            "the step waited for data \(Int((100 * fraction).rounded()))% of the time: the loader does not keep up; raise --loader-threads (now \(loaderThreads))"
    }
}
