import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Keeps asynchronous signal handlers off the threads that compute.
///
/// oneDNN 2.6's AVX-512 sgemm kernels keep data below the stack pointer: a handler that runs on
/// a thread inside one of them overwrites it, and the process crashes or corrupts its heap
/// (reproduced with a no-op SIGUSR1 handler and a plain `dnnl_sgemm` loop; its AVX2 kernels are
/// unaffected). sfkd handles SIGINT, SIGTERM and SIGUSR1 (Slurm's warning) during training, so
/// these are blocked on the main thread before any other thread starts, every thread sfkd
/// creates inherits that, and one thread that does nothing else takes them. Child processes
/// start with no signal blocked (Foundation's `Process` resets the mask).
public enum SignalShield {
    public static let signals: [Int32] = [SIGINT, SIGTERM, SIGUSR1]

    /// Call first in `main`, before any thread is created.
    public static func install() {
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
        let receiver = Thread {
            var set = signalSet()
            pthread_sigmask(SIG_UNBLOCK, &set, nil)
            while true { pause() }
        }
        receiver.name = "sfkd-signals"
        receiver.start()
    }

    static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for number in signals { sigaddset(&set, number) }
        return set
    }
}
