import CBLAS
import Dispatch

/// The intra-op thread count, shared by OpenBLAS and by the non-BLAS kernels so that the two
/// never oversubscribe the cores given to a process.
public enum Threads {
    nonisolated(unsafe) private static var configured: Int = 0

    public static var count: Int {
        if configured == 0 { configured = max(1, Int(openblas_get_num_threads())) }
        return configured
    }

    public static func configure(_ threads: Int) {
        ensure(threads >= 1, "thread count must be at least 1, got \(threads)")
        configured = threads
        openblas_set_num_threads(Int32(threads))
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
        if start < end { body(chunk, start..<end) }
    }
}

/// Runs `body` with OpenBLAS limited to the calling thread, for regions where our own threads
/// each call BLAS on a small problem (one image, one attention head): a threaded GEMM inside
/// a threaded loop would oversubscribe the cores.
public func withSingleThreadedBLAS<T>(_ body: () throws -> T) rethrows -> T {
    let threads = Threads.count
    if threads <= 1 { return try body() }
    openblas_set_num_threads(1)
    defer { openblas_set_num_threads(Int32(threads)) }
    return try body()
}
