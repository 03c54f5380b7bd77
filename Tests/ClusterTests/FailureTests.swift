import Foundation
import TestSupport
import XCTest

/// A rank that dies or hangs ends the whole job quickly with a message, and the run resumes
/// from its last complete checkpoint.
final class FailureTests: XCTestCase {
    /// The pid of world rank `rank` among mpirun's descendants, once it exists.
    func pid(ofRank rank: Int, under mpirun: Int32, within seconds: TimeInterval = 60) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }
            for pid in pids {
                guard let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ"),
                    String(decoding: environ, as: UTF8.self).split(separator: "\0").contains(
                        Substring("OMPI_COMM_WORLD_RANK=\(rank)"))
                else { continue }
                // Only a descendant of our mpirun (other tests may run jobs too).
                var ancestor = pid
                while ancestor > 1 {
                    guard let stat = try? String(contentsOfFile: "/proc/\(ancestor)/stat", encoding: .utf8),
                        let close = stat.lastIndex(of: ")")
                    else { break }
                    let fields = stat[stat.index(after: close)...].split(separator: " ")
                    guard fields.count > 1, let parent = Int32(fields[1]) else { break }
                    if parent == mpirun { return pid }
                    ancestor = parent
                }
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return nil
    }

    /// Waits until the run folder's metrics show `step` steps (so training is under way).
    func waitForStep(_ step: Int, in out: String, within seconds: TimeInterval = 120) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8),
                text.split(separator: "\n").count >= step
            {
                return true
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return false
    }

    func trainingArguments(_ out: String) -> [String] {
        [
            "train", "--model", "vit-tiny", "--dataset", "synthetic", "--steps", "40", "--batch-size", "32",
            "--threads", "1",
            "--log-every", "1", "--checkpoint-every", "5", "--out", out,
        ]
    }

    func resumeAndFinish(_ out: String) throws {
        let resumed = try mpirun(2, ["train", "--out", out, "--resume"], timeout: 300, release: true)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resuming from"), resumed.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/summary.json"))
    }

    /// Slurm's warning before a preemption or the time limit: SIGUSR1 to mpirun, which forwards
    /// it to every rank. Both ranks stop after the same step, rank 0 writes that step's
    /// checkpoint, the job exits with 75 (requeue me), and a resume ends with the weights of the
    /// uninterrupted run, bit for bit.
    func testSIGUSR1CheckpointsTheStepExitsForARequeueAndTheResumeMatchesAnUninterruptedRun() throws {
        let runs = try TrainingRuns()
        let arguments = ["--model", "vit-tiny", "--steps", "40", "--batch-size", "32"]
        let uninterrupted = try runs.train(2, "whole", arguments)
        let out = runs.scratch.appendingPathComponent("preempted").path
        let result = try mpirun(
            2, ["train", "--dataset", "synthetic", "--threads", "1", "--log-every", "1", "--out", out] + arguments,
            timeout: 240, release: true
        ) { process in
            guard self.waitForStep(6, in: out) else {
                XCTFail("training did not get under way")
                return
            }
            kill(process.processIdentifier, SIGUSR1)
        }
        XCTAssertEqual(result.status, 75, result.stderr)
        let stop = try XCTUnwrap(
            result.stderr.firstMatch(
                of: #/stopped by SIGUSR1 after step (\d+) of 40; the checkpoint of step \d+ is written/#), result.stderr
        )
        let step = try XCTUnwrap(Int(stop.1))
        XCTAssertLessThan(step, 40, "the signal came too late to test anything")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/checkpoints/step-\(step)/DONE"))
        XCTAssertEqual(
            result.stderr.components(separatedBy: "stopped by SIGUSR1").count, 2,
            "rank 0 alone says it: \(result.stderr)")
        XCTAssertFalse(result.stderr.contains("MPI_ABORT"), "a stop is not an abort: \(result.stderr)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model.safetensors"))
        let resumed = try mpirun(2, ["train", "--out", out, "--resume"], timeout: 240, release: true)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(
            resumed.stderr.contains("resuming from \(out)/checkpoints/step-\(step) (step \(step) of 40)"),
            resumed.stderr)
        try runs.assertSameParameters(uninterrupted, out, tolerance: 0, "resumed after SIGUSR1")
    }

    func testAKilledRankEndsTheJobQuicklyAndTheRunResumes() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("sfkd-kill-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        var killedAt: Date?
        let result = try mpirun(2, trainingArguments(out), timeout: 240, release: true) { process in
            guard self.waitForStep(12, in: out), let victim = self.pid(ofRank: 1, under: process.processIdentifier)
            else {
                XCTFail("training did not get under way")
                return
            }
            kill(victim, SIGKILL)
            killedAt = Date()
        }
        let ended = Date()
        XCTAssertNotEqual(result.status, 0)
        let seconds = ended.timeIntervalSince(try XCTUnwrap(killedAt))
        XCTAssertLessThan(seconds, 30, "the job took \(seconds) s to end after rank 1 was killed")
        XCTAssertTrue(result.stderr.contains("rank 1"), "mpirun names the dead rank: \(result.stderr)")
        try resumeAndFinish(out)
    }

    func testAStuckCollectiveIsReportedWithTheMissingRankAndAborts() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("sfkd-stall-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        var stopped: Int32?
        let result = try mpirun(2, trainingArguments(out) + ["--comm-timeout", "4"], timeout: 240, release: true) {
            process in
            guard self.waitForStep(12, in: out), let victim = self.pid(ofRank: 1, under: process.processIdentifier)
            else {
                XCTFail("training did not get under way")
                return
            }
            // A hung rank: stopped, it neither computes nor answers.
            kill(victim, SIGSTOP)
            stopped = victim
        }
        if let stopped {
            kill(stopped, SIGCONT)
            kill(stopped, SIGKILL)
        }
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("longer than --comm-timeout 4 s"), result.stderr)
        // Which collective rank 0 waits in depends on where rank 1 was stopped: one of the step's
        // gradient buckets, or the loss statistics after them. Either is named with its step.
        let named = try Regex(
            #"MPI_Allreduce #\d+ on '\w+' \((gradient bucket \d+ of \d+, [\d.]+ MB|loss statistics), step \d+\)"#)
        XCTAssertNotNil(result.stderr.firstMatch(of: named), "names the operation and its step: \(result.stderr)")
        XCTAssertTrue(
            result.stderr.contains("Ranks still missing: rank 1 (no answer"), "names the missing rank: \(result.stderr)"
        )
        try resumeAndFinish(out)
    }
}
