import Foundation

/// SIGINT and SIGTERM during training: the handler only records the signal; the step in
/// progress finishes, every student rank learns of it through the step's statistics (so all
/// stop after the same step), and the run ends with `TrainingStopped`.
enum StopSignal {
    nonisolated(unsafe) static var received: Int32 = 0

    static func install() {
        signal(SIGINT) { StopSignal.received = $0 }
        signal(SIGTERM) { StopSignal.received = $0 }
    }

    static func uninstall() {
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}

/// The run stopped on a signal after a complete step; `exitCode` is the shell's convention (128 + signal).
public struct TrainingStopped: Error, CustomStringConvertible {
    public let signal: Int32
    public let description: String
    public var exitCode: Int32 { 128 + signal }
}
