import Foundation

/// Training progress on stderr: one live line rewritten in place on a terminal, plain lines at
/// intervals otherwise (logs, CI, mpirun's forwarded output).
final class ProgressReporter {
    private let isTerminal = isatty(2) != 0
    private var lastPrint = Date.distantPast
    private let plainInterval: TimeInterval
    private var liveLineShown = false
    /// Off on every rank but 0 of a multi-rank job.
    var enabled = true

    init(plainInterval: TimeInterval = 10) { self.plainInterval = plainInterval }

    func update(_ line: @autoclosure () -> String, force: Bool = false) {
        guard enabled else { return }
        let now = Date()
        if isTerminal {
            guard force || now.timeIntervalSince(lastPrint) >= 0.2 else { return }
            FileHandle.standardError.write(("\r\u{1B}[K" + line()).data(using: .utf8)!)
            liveLineShown = true
        } else {
            guard force || now.timeIntervalSince(lastPrint) >= plainInterval else { return }
            FileHandle.standardError.write((line() + "\n").data(using: .utf8)!)
        }
        lastPrint = now
    }

    /// A line that stays (epoch results, messages).
    func message(_ line: String) {
        guard enabled else { return }
        if isTerminal && liveLineShown {
            FileHandle.standardError.write("\r\u{1B}[K".data(using: .utf8)!)
            liveLineShown = false
        }
        FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite && seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m" }
        if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s)s"
    }
}
