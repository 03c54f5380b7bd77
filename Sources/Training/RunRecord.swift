import Foundation

/// What identifies a run beyond its settings: the sfkd version that ran it and a hash of the
/// settings that decide its trajectory.
public enum RunRecord {
    /// The release this source tree is.
    public static let release = "0.9.0"

    /// `release` and, when the binary was built inside a git checkout, the commit it was
    /// built from (read from `.git`, no subprocess: forking under MPI is unsafe on some links),
    /// e.g. "0.9.0+git.518924d".
    public static let version: String = {
        guard
            let commit = checkoutCommit(
                startingAt: URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
                    .deletingLastPathComponent())
        else {
            return release
        }
        return "\(release)+git.\(commit.prefix(7))"
    }()

    /// The commit HEAD names in the nearest `.git` folder above `folder`.
    static func checkoutCommit(startingAt folder: URL) -> String? {
        var directory = folder.standardizedFileURL
        for _ in 0..<12 {
            let git = directory.appendingPathComponent(".git")
            if let head = try? String(contentsOf: git.appendingPathComponent("HEAD"), encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            {
                guard head.hasPrefix("ref: ") else { return isCommit(head) ? head : nil }
                let ref = String(head.dropFirst(5))
                if let loose = try? String(contentsOf: git.appendingPathComponent(ref), encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines), isCommit(loose)
                {
                    return loose
                }
                let packed = (try? String(contentsOf: git.appendingPathComponent("packed-refs"), encoding: .utf8)) ?? ""
                for line in packed.split(separator: "\n") where line.hasSuffix(" \(ref)") {
                    let commit = String(line.prefix(while: { $0 != " " }))
                    if isCommit(commit) { return commit }
                }
                return nil
            }
            let parent = directory.deletingLastPathComponent()
            if parent.path == directory.path { break }
            directory = parent
        }
        return nil
    }

    private static func isCommit(_ text: String) -> Bool { text.count == 40 && text.allSatisfy(\.isHexDigit) }

    /// FNV-1a (64 bits, hex) of the trajectory settings, one `key: value` line each, as the run
    /// used them (a student recipe's settings filled in): runs with the same hash differ only in
    /// paths, threads, logging or placement.
    public static func configHash(_ config: TrainingConfig) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in (["model: \(config.model)"] + config.trajectoryLines).joined(separator: "\n").utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        return String(hash, radix: 16).leftPadded(to: 16)
    }
}

private extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
