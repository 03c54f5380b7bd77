import CBLAS
import Dispatch

#if canImport(Glibc)
    import Glibc
#endif

/// The intra-op thread count. All threads are sfkd's own: OpenBLAS always runs on the calling
/// thread, and `gemm` splits large products across `Threads.count` threads itself. OpenBLAS's
/// own pool would spin (sched_yield) between calls and take the cores from the non-BLAS kernels
/// running in between; a profile of vit-tiny on 2 threads spent a fifth of its time there.
/// The default is OpenBLAS's (`OPENBLAS_NUM_THREADS`, else the core count).
public enum Threads {
    nonisolated(unsafe) private static var configured: Int = 0

    public static var count: Int {
        if configured == 0 {
            configured = max(1, Int(openblas_get_num_threads()))
            openblas_set_num_threads(1)
        }
        return configured
    }

    public static func configure(_ threads: Int) {
        ensure(threads >= 1, "thread count must be at least 1, got \(threads)")
        configured = threads
        openblas_set_num_threads(1)
    }
}

/// Whether the calling thread runs a chunk of `parallelFor` (a GEMM there stays on this thread).
enum ParallelRegion {
    nonisolated(unsafe) static var key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    static var isInside: Bool { pthread_getspecific(key) != nil }

    @inline(__always)
    static func run(_ body: () -> Void) {
        if isInside {
            body()
            return
        }
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
        body()
        pthread_setspecific(key, nil)
    }
}

/// Runs `body` over `0..<count` split into at most `Threads.count` contiguous chunks. Work smaller
/// than `grain` items per thread stays on the calling thread (a dispatch costs microseconds).
@inline(__always)
public func parallelFor(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
    parallelChunks(count, grain: grain) { _, range in body(range) }
}

/// How `parallelFor` splits `count` items: the number of chunks and the size of each.
public func parallelChunking(_ count: Int, grain: Int = 1) -> (chunks: Int, perChunk: Int) {
    let threads = Threads.count
    if threads <= 1 || count < 2 * grain || count < 2 { return (count > 0 ? 1 : 0, max(count, 1)) }
    let chunks = min(threads, (count + grain - 1) / grain)
    let perChunk = (count + chunks - 1) / chunks
    return ((count + perChunk - 1) / perChunk, perChunk)
}

/// `parallelFor` that also passes each chunk's index, so per-chunk partial results can be
/// combined in a fixed order (the same sums, run after run).
public func parallelChunks(_ count: Int, grain: Int = 1, _ body: (_ chunk: Int, _ range: Range<Int>) -> Void) {
    let (chunks, perChunk) = parallelChunking(count, grain: grain)
    if chunks <= 1 {
        if count > 0 { body(0, 0..<count) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
        let start = chunk * perChunk
        let end = min(count, start + perChunk)
        if start < end { ParallelRegion.run { body(chunk, start..<end) } }
    }
}

/// Runs `body` with every GEMM on the calling thread, for regions where our own threads each
/// multiply a small problem (one image, one attention head): a split GEMM inside a threaded
/// loop would oversubscribe the cores. (Chunks of `parallelFor` are such regions already.)
public func withSingleThreadedBLAS<T>(_ body: () throws -> T) rethrows -> T {
    if ParallelRegion.isInside { return try body() }
    pthread_setspecific(ParallelRegion.key, UnsafeRawPointer(bitPattern: 1))
    defer { pthread_setspecific(ParallelRegion.key, nil) }
    return try body()
}
