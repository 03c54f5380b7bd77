import Foundation

/// SIGINT, SIGTERM and SIGUSR1 during training: the handler only records the signal; the step
/// in progress finishes, every student rank learns of it through the step's statistics (so all
/// stop after the same step), rank 0 writes a complete checkpoint of that step, and the run
/// ends with `TrainingStopped`. SIGUSR1 is what Slurm sends ahead of a preemption or the time
/// limit (`--signal=B:USR1@90`, forwarded by the batch script; mpirun forwards it to every
/// rank); SIGTERM is the time limit itself.
enum StopSignal {
    nonisolated(unsafe) static var received: Int32 = 0
    static let signals = [SIGINT, SIGTERM, SIGUSR1]

    static func install() {
        for number in signals { signal(number) { StopSignal.received = $0 } }
    }

    /// After a stop, repeats of SIGTERM and SIGUSR1 are ignored until the process exits with
    /// the stop's status (a second forwarded SIGUSR1 must not turn a requeue into a kill); a
    /// second Ctrl-C still ends it at once.
    static func uninstall() {
        for number in signals { signal(number, received != 0 && number != SIGINT ? SIG_IGN : SIG_DFL) }
    }

    static func name(_ number: Int32) -> String {
        switch number {
        case SIGINT: return "SIGINT"
        case SIGUSR1: return "SIGUSR1"
        default: return "SIGTERM"
        }
    }
}

/// The run stopped on a signal after a complete step whose checkpoint it wrote.
public struct TrainingStopped: Error, CustomStringConvertible {
    /// The status of a run stopped by SIGTERM or SIGUSR1 (a preemption or the time limit) once
    /// its checkpoint is written: "run me again with --resume" (EX_TEMPFAIL). The Slurm batch
    /// script requeues the job on it.
    public static let requeueExitCode: Int32 = 75

    public let signal: Int32
    public let description: String
    /// Whether every rank of the job stopped at the same step and may end normally (with
    /// teacher ranks, which wait for their students, the job is aborted instead).
    public let everyRankStopped: Bool
    /// 130 for SIGINT (the shell's convention for Ctrl-C), `requeueExitCode` otherwise.
    public var exitCode: Int32 { signal == SIGINT ? 128 + SIGINT : Self.requeueExitCode }
}
