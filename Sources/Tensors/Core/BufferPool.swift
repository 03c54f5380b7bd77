import Foundation

/// A size-bucketed pool of Float buffers. Tensors return their storage here when they die, so
/// a training step that repeats the shapes of the previous one reuses every buffer instead
/// of calling the allocator.
///
/// Buckets are the next of {1, 1.25, 1.5, 1.75} x 2^k at or above the request, which bounds
/// the waste at 25% while keeping the number of distinct sizes small.
public final class BufferPool: @unchecked Sendable {
    public static let shared = BufferPool()

    public struct Statistics: Equatable, Sendable {
        /// Buffers obtained from the system allocator since the start (or the last reset).
        public var freshAllocations: Int
        /// Requests served from the pool.
        public var reuses: Int
        /// Bytes held by the pool in total, whether in use or free.
        public var bytesHeld: Int
        /// Bytes of the buffers tensors hold now, and the most they held at once.
        public var bytesInUse = 0
        public var peakBytesInUse = 0
    }

    private var freeLists: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private var statistics = Statistics(freshAllocations: 0, reuses: 0, bytesHeld: 0)
    private let lock = NSLock()

    /// A pool of its own (tensors use `shared`).
    public init() {}

    public static func bucketCapacity(for count: Int) -> Int {
        if count <= 16 { return 16 }
        let power = Int.bitWidth - (count - 1).leadingZeroBitCount - 1  // 2^power < count
        let base = 1 << power
        let quarter = base / 4
        var capacity = base
        while capacity < count { capacity += quarter }
        return capacity
    }

    /// A buffer of at least `count` Floats and its capacity, to hand back with `release`.
    public func acquire(count: Int) -> (UnsafeMutablePointer<Float>, Int) {
        let capacity = Self.bucketCapacity(for: count)
        lock.lock()
        statistics.bytesInUse += capacity * MemoryLayout<Float>.stride
        statistics.peakBytesInUse = max(statistics.peakBytesInUse, statistics.bytesInUse)
        if var list = freeLists[capacity], let pointer = list.popLast() {
            freeLists[capacity] = list
            statistics.reuses += 1
            lock.unlock()
            return (pointer, capacity)
        }
        // A free buffer of up to twice the size serves too: a step's shapes change from layer to
        // layer (and from teacher to student), and buffers kept for one size would otherwise sit
        // idle while another size allocates more memory.
        if let larger = freeLists.keys.filter({ $0 > capacity && $0 <= 2 * capacity && !freeLists[$0]!.isEmpty }).min(),
            let pointer = freeLists[larger]!.popLast()
        {
            statistics.reuses += 1
            statistics.bytesInUse += (larger - capacity) * MemoryLayout<Float>.stride
            statistics.peakBytesInUse = max(statistics.peakBytesInUse, statistics.bytesInUse)
            lock.unlock()
            return (pointer, larger)
        }
        statistics.freshAllocations += 1
        statistics.bytesHeld += capacity * MemoryLayout<Float>.stride
        lock.unlock()
        let raw = UnsafeMutableRawPointer.allocate(byteCount: capacity * MemoryLayout<Float>.stride, alignment: 64)
        return (raw.bindMemory(to: Float.self, capacity: capacity), capacity)
    }

    public func release(_ pointer: UnsafeMutablePointer<Float>, capacity: Int) {
        lock.lock()
        freeLists[capacity, default: []].append(pointer)
        statistics.bytesInUse -= capacity * MemoryLayout<Float>.stride
        lock.unlock()
    }

    public var stats: Statistics {
        lock.lock()
        defer { lock.unlock() }
        return statistics
    }

    /// Returns every free buffer to the system; buffers in use stay valid.
    public func trim() {
        lock.lock()
        for (capacity, list) in freeLists {
            for pointer in list { pointer.deallocate() }
            statistics.bytesHeld -= capacity * MemoryLayout<Float>.stride * list.count
        }
        freeLists.removeAll()
        lock.unlock()
    }
}

/// A buffer of Floats, owned by one or more tensors (views share it) and handed back to the
/// pool when the last one goes away.
public final class Storage: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Float>
    public let capacity: Int

    /// Uninitialised storage for `count` Floats.
    public init(count: Int) {
        (base, capacity) = BufferPool.shared.acquire(count: max(count, 1))
        #if DEBUG
            // Debug builds poison every buffer handed out, so an op that reads memory it never
            // wrote produces NaN in the tests instead of passing by luck.
            base.update(repeating: .nan, count: capacity)
        #endif
    }

    deinit {
        BufferPool.shared.release(base, capacity: capacity)
    }
}
