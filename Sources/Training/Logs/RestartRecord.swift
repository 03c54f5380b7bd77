import Foundation
import Settings

/// One restart of the job by `launch/sfkd-mpirun --max-restarts`, as it appends it to the run
/// folder's `restarts.jsonl`: what failed, where, the step the job resumed from and the time
/// lost. summary.json lists them.
public struct RestartRecord: Codable, Equatable, Sendable {
    public var attempt: Int
    public var exitStatus: Int
    public var failedRank: Int?
    public var failedHost: String?
    public var signal: Int?
    public var resumedFromStep: Int
    /// From the checkpoint resumed from to the failure: the work done again.
    public var lostSeconds: Double
    public var time: String
    /// With `--min-ranks`: the hosts that no longer answered, and the ranks (teacher ranks
    /// among them) the job restarted on without them.
    public var droppedHosts: [String]?
    public var restartedRanks: Int?
    public var teacherRanks: Int?

    enum CodingKeys: String, CodingKey {
        case attempt, signal, time
        case exitStatus = "exit_status", failedRank = "failed_rank", failedHost = "failed_host",
            resumedFromStep = "resumed_from_step", lostSeconds = "lost_seconds", droppedHosts = "dropped_hosts",
            restartedRanks = "restarted_ranks", teacherRanks = "teacher_ranks"
    }

    /// The records of the run folder `folder` (none when the job never restarted).
    public static func read(folder: String) throws -> [RestartRecord] {
        let path = folder + "/restarts.jsonl"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").enumerated().map { index, line in
            do {
                return try JSONDecoder().decode(RestartRecord.self, from: Data(line.utf8))
            } catch {
                throw UserError("\(path), line \(index + 1): \(describeDecodingError(error))")
            }
        }
    }
}
