import Foundation

/// A crash on purpose, for the tests of elastic recovery and for users who want to see a restart:
/// `SFKD_FAIL_AT=RANK:STEP` kills rank RANK (of the whole job) with SIGKILL right after it
/// completes step STEP, as a lost node would end it: no message, no checkpoint. It fires in the
/// first attempt only (`SFKD_ATTEMPT` unset or 0; the supervisor, `launch/sfkd-mpirun
/// --max-restarts`, numbers its restarts from 1), so the restarted job runs on.
enum FailureInjection {
    static let target: (rank: Int, step: Int)? = {
        let environment = ProcessInfo.processInfo.environment
        guard let text = environment["SFKD_FAIL_AT"], Int(environment["SFKD_ATTEMPT"] ?? "0") == 0 else { return nil }
        let parts = text.split(separator: ":").compactMap { Int($0) }
        guard parts.count == 2, parts[0] >= 0, parts[1] >= 1 else {
            FileHandle.standardError.write(
                "sfkd: SFKD_FAIL_AT='\(text)': expected RANK:STEP, e.g. 1:12\n".data(using: .utf8)!)
            exit(2)
        }
        return (parts[0], parts[1])
    }()

    /// Called after each completed step.
    static func afterStep(_ step: Int, rank: Int) {
        guard let target, target.rank == rank, target.step == step else { return }
        kill(getpid(), SIGKILL)
    }
}
