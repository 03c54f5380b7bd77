import Foundation
import Tensors

/// Data-parallel gradient averaging in the style of PyTorch DDP's reducer. Gradients live in
/// one flat arena; buckets cover it in reverse parameter order (the order backward finishes
/// them), the first about `firstBucketBytes`, the rest about `bucketBytes`. When the tape
/// reports that every gradient of a bucket is final, the bucket is handed to one communication
/// thread, which hands buckets to the communication hook strictly in bucket order (so every
/// rank issues the same collectives in the same order); the default hook allreduces and divides
/// by the number of ranks. Open MPI 4.1 makes no background progress on nonblocking
/// collectives, hence a thread of our own. `finish()` waits only for what is still in flight.
public final class GradientSync: @unchecked Sendable {
    public struct Bucket: Sendable, Equatable {
        /// Position in bucket order (the order of the collectives).
        public let index: Int
        /// Floats [start, end) of the arena.
        public let start: Int
        public let end: Int
        /// Indices into the parameter list.
        public let parameters: [Int]
    }

    public let buckets: [Bucket]
    public let overlap: Bool
    public let hook: any CommunicationHook
    let communicator: Communicator
    let arena: Tensor
    let parameters: [Tensor]
    private let bucketOfParameter: [Int]

    private let condition = NSCondition()
    private var pendingInBucket: [Int]
    private var readyUpTo = 0  // buckets [0, readyUpTo) may be launched
    private var bucketReady: [Bool]
    private var completed = 0
    private var failure: Error?
    private var stopping = false
    private var thread: Thread?

    /// Seconds the communication thread spent in allreduce, and the training thread waited in `finish`, since the last `resetTimers`.
    public private(set) var communicationSeconds = 0.0
    public private(set) var waitSeconds = 0.0
    /// When false, backward leaves gradients local: no bucket is reduced and `finish` only
    /// resets (benchmarks time the same replicas with and without averaging). Change it only
    /// between steps, on every rank alike.
    public var isActive = true
    /// Steps completed by `finish`.
    public private(set) var steps = 0

    public init(
        parameters: [Tensor], communicator: Communicator, firstBucketBytes: Int = 1 << 20, bucketBytes: Int = 8 << 20,
        overlap: Bool = true,
        hook: any CommunicationHook = AllreduceAverage()
    ) {
        self.parameters = parameters
        self.communicator = communicator
        self.overlap = overlap
        self.hook = hook
        let total = parameters.reduce(0) { $0 + $1.count }
        arena = Tensor(zeros: [max(total, 1)])
        let offsets = Self.offsets(of: parameters.map(\.count))
        let buckets = Self.buckets(
            parameterCounts: parameters.map(\.count), firstBucketBytes: firstBucketBytes, bucketBytes: bucketBytes)
        self.buckets = buckets
        var owner = [Int](repeating: 0, count: parameters.count)
        for (b, bucket) in buckets.enumerated() { for p in bucket.parameters { owner[p] = b } }
        bucketOfParameter = owner
        pendingInBucket = buckets.map(\.parameters.count)
        bucketReady = [Bool](repeating: false, count: buckets.count)

        for (index, p) in parameters.enumerated() {
            p.attachGradientBuffer(Tensor(shape: [p.count], storage: arena.storage, offset: offsets[index]))
            p.gradientReadyHook = { [weak self] _ in self?.gradientReady(index) }
        }
        if overlap && communicator.size > 1 {
            let thread = Thread { [weak self] in self?.communicationLoop() }
            thread.name = "sfkd-gradient-sync"
            self.thread = thread
            thread.start()
        }
    }

    /// Where each parameter starts in the arena (parameter order, no gaps).
    public static func offsets(of parameterCounts: [Int]) -> [Int] {
        var offsets: [Int] = [], offset = 0
        for count in parameterCounts {
            offsets.append(offset)
            offset += count
        }
        return offsets
    }

    /// The buckets for parameters of these sizes: from the last parameter backwards, the first
    /// bucket closed once it holds `firstBucketBytes`, the others at `bucketBytes`.
    public static func buckets(parameterCounts: [Int], firstBucketBytes: Int = 1 << 20, bucketBytes: Int = 8 << 20)
        -> [Bucket]
    {
        let offsets = offsets(of: parameterCounts)
        var buckets: [Bucket] = []
        var current: [Int] = []
        var currentFloats = 0
        func close() {
            buckets.append(
                Bucket(
                    index: buckets.count, start: offsets[current.last!],
                    end: offsets[current.first!] + parameterCounts[current.first!], parameters: current))
            current = []
            currentFloats = 0
        }
        for index in parameterCounts.indices.reversed() {
            current.append(index)
            currentFloats += parameterCounts[index]
            if currentFloats >= (buckets.isEmpty ? firstBucketBytes : bucketBytes) / 4 { close() }
        }
        if !current.isEmpty { close() }
        return buckets
    }

    deinit {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
        for p in parameters { p.gradientReadyHook = nil }
    }

    /// The arena as one tensor (for clipping or inspection).
    public var gradients: Tensor { arena }

    /// Zeroes every gradient for the next step (one fill of the arena).
    public func zeroGradients() { arena.fill(0) }

    private func gradientReady(_ index: Int) {
        guard isActive else { return }
        condition.lock()
        let bucket = bucketOfParameter[index]
        pendingInBucket[bucket] -= 1
        if pendingInBucket[bucket] == 0 {
            bucketReady[bucket] = true
            while readyUpTo < buckets.count && bucketReady[readyUpTo] { readyUpTo += 1 }
            condition.broadcast()
        }
        condition.unlock()
    }

    private func reduce(_ bucketIndex: Int) throws {
        let bucket = buckets[bucketIndex]
        let start = DispatchTime.now().uptimeNanoseconds
        let slice = UnsafeMutableBufferPointer(start: arena.data + bucket.start, count: bucket.end - bucket.start)
        let megabytes = String(format: "%.2f", Double(slice.count * 4) / 1_048_576)
        try hook.reduce(
            slice, bucket: bucket, communicator: communicator,
            context: "gradient bucket \(bucketIndex + 1) of \(buckets.count), \(megabytes) MB, step \(steps + 1)")
        communicationSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }

    private func communicationLoop() {
        while true {
            condition.lock()
            while completed >= readyUpTo && !stopping { condition.wait() }
            if stopping {
                condition.unlock()
                return
            }
            let next = completed
            condition.unlock()
            do {
                try reduce(next)
            } catch {
                condition.lock()
                failure = error
                completed = buckets.count
                condition.broadcast()
                condition.unlock()
                return
            }
            condition.lock()
            completed += 1
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Completes the step's averaging: buckets whose parameters got no gradient are released
    /// (their zeros still take part, so every rank runs the same collectives), then waits for the
    /// communication thread, or reduces every bucket here without overlap.
    public func finish() throws {
        guard isActive else { return }
        let start = DispatchTime.now().uptimeNanoseconds
        condition.lock()
        for b in buckets.indices { bucketReady[b] = true }
        readyUpTo = buckets.count
        condition.broadcast()
        condition.unlock()
        if thread == nil {
            if communicator.size > 1 { for b in buckets.indices { try reduce(b) } }
            condition.lock()
            completed = buckets.count
            condition.unlock()
        } else {
            condition.lock()
            while completed < buckets.count { condition.wait() }
            condition.unlock()
        }
        condition.lock()
        let error = failure
        // Ready for the next step.
        completed = 0
        readyUpTo = 0
        pendingInBucket = buckets.map(\.parameters.count)
        bucketReady = [Bool](repeating: false, count: buckets.count)
        condition.unlock()
        waitSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        steps += 1
        if let error { throw error }
    }

    public func resetTimers() {
        communicationSeconds = 0
        waitSeconds = 0
    }
}

/// What `GradientSync` does with a bucket once backward has finished its gradients, on the
/// communication thread, one bucket at a time in bucket order (PyTorch DDP's comm hook). On
/// return `values` must hold the gradient every rank applies; compressed or sharded variants
/// plug in here.
public protocol CommunicationHook: AnyObject {
    func reduce(
        _ values: UnsafeMutableBufferPointer<Float>, bucket: GradientSync.Bucket, communicator: Communicator,
        context: String) throws
}

/// The default hook: allreduce the bucket in float32 and divide by the number of ranks.
public final class AllreduceAverage: CommunicationHook {
    public init() {}

    public func reduce(
        _ values: UnsafeMutableBufferPointer<Float>, bucket: GradientSync.Bucket, communicator: Communicator,
        context: String
    ) throws {
        try communicator.allreduce(values, context: context)
        let scale = 1 / Float(communicator.size)
        for i in values.indices { values[i] *= scale }
    }
}
