import Foundation

/// A crash on purpose, for the tests of elastic recovery and for users who want to see a restart:
/// `SFKD_FAIL_AT=RANK:STEP[:ATTEMPTS]` kills rank RANK (of the whole job) with SIGKILL right
/// after it completes step STEP, as a lost node would end it: no message, no checkpoint. It
/// fires in the first ATTEMPTS attempts (default 1; `SFKD_ATTEMPT` unset or 0 is the first, and
/// the supervisor, `launch/sfkd-mpirun --max-restarts`, numbers its restarts from 1), so the
/// restarted job runs on, or, with more attempts than restarts, the restarts run out.
enum FailureInjection {
    static let target: (rank: Int, step: Int)? = {
        let environment = ProcessInfo.processInfo.environment
        guard let text = environment["SFKD_FAIL_AT"] else { return nil }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 2 || parts.count == 3, let rank = parts[0], let step = parts[1], rank >= 0, step >= 1,
            (parts.count == 2 ? 1 : parts[2] ?? 0) >= 1
        else {
            FileHandle.standardError.write(
                "sfkd: SFKD_FAIL_AT='\(text)': expected RANK:STEP or RANK:STEP:ATTEMPTS, e.g. 1:12\n".data(
                    using: .utf8)!)
            exit(2)
        }
        let attempts = parts.count == 3 ? parts[2]! : 1
        guard Int(environment["SFKD_ATTEMPT"] ?? "0") ?? 0 < attempts else { return nil }
        return (rank, step)
    }()

    /// Called after each completed step (on a teacher rank: after it computed and posted the
    /// step's outputs).
    static func afterStep(_ step: Int, rank: Int) {
        guard let target, target.rank == rank, target.step == step else { return }
        kill(getpid(), SIGKILL)
    }
}
