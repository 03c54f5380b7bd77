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
    let threads = Threads.count
    if threads <= 1 || count < 2 * grain || count < 2 {
        if count > 0 { body(0..<count) }
        return
    }
    let chunks = min(threads, (count + grain - 1) / grain)
    let perChunk = (count + chunks - 1) / chunks
    DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
        let start = chunk * perChunk
        let end = min(count, start + perChunk)
        if start < end { body(start..<end) }
    }
}
