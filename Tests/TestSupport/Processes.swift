import Foundation
import XCTest

/// The repository root (this file is Tests/TestSupport/Processes.swift).
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// Build configurations to look in, the one these tests were built with first, so a stale build
/// of the other kind is not used.
#if DEBUG
    public let builtConfigurations = ["debug", "release"]
#else
    public let builtConfigurations = ["release", "debug"]
#endif

/// The built `sfkd`, preferring `configuration`'s build; skips the test when none is built.
public func sfkdExecutable(preferring configuration: String? = nil) throws -> String {
    let order =
        configuration.map { preferred in [preferred] + builtConfigurations.filter { $0 != preferred } }
        ?? builtConfigurations
    let candidates = order.map { packageRoot.appendingPathComponent(".build/\($0)/sfkd").path }
    guard let sfkd = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw XCTSkip("sfkd is not built (looked for \(candidates))")
    }
    return sfkd
}

/// A fresh temporary folder, removed after the test.
public func temporaryFolder(_ test: XCTestCase) throws -> String {
    let path = NSTemporaryDirectory() + "sfkd-test-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

/// Runs `process` to its end, at most `timeout` seconds (then interrupts its process group, kills
/// it 10 s later, and fails the test), collecting its output; `whileRunning` gets it once started.
/// Descendants that outlive it (an orphaned rank, a hung mpirun in a group of its own) are killed
/// 30 s after it ended, failing the test instead of hanging the suite.
public func runBounded(_ process: Process, timeout: TimeInterval, whileRunning: ((Process) -> Void)? = nil) throws -> (
    status: Int32, stdout: String, stderr: String
) {
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Foundation starts the child as the leader of its own process group, so signalling the
    // group reaches the launcher and whatever it started that stayed in the group.
    let pid = process.processIdentifier
    // Foundation reaps the child (and clears isRunning) only once every process holding the socket
    // it inherited has closed it, descendants included; those and the pipes name what to kill.
    let inherited = Set(descriptorTargets(of: pid).filter { $0.hasPrefix("socket:") } + [out, err].map(pipeName))
    // Both pipes are drained on their own threads (a full pipe would block the child).
    let outData = Collected(out.fileHandleForReading), errData = Collected(err.fileHandleForReading)
    whileRunning?(process)
    let command = "\(process.executableURL!.path) \(process.arguments!.joined(separator: " "))"
    func waitForEnd(until deadline: Date) -> Bool {
        while !hasEnded(pid) && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        return hasEnded(pid)
    }
    if !waitForEnd(until: Date().addingTimeInterval(timeout)) {
        kill(-pid, SIGINT)
        if !waitForEnd(until: Date().addingTimeInterval(10)) { kill(-pid, SIGKILL) }
        XCTFail("\(command) did not finish within \(timeout) s")
    }
    let settled = Date().addingTimeInterval(30)
    while process.isRunning && Date() < settled { Thread.sleep(forTimeInterval: 0.05) }
    if process.isRunning || !(outData.waitForEnd(seconds: 1) && errData.waitForEnd(seconds: 1)) {
        let holders = processesHolding(inherited)
        let names = holders.map { holder in
            let arguments = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(holder)/cmdline"))) ?? Data()
            return "\(holder) " + String(decoding: arguments.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        }
        for holder in holders { kill(holder, SIGKILL) }
        XCTFail("\(command) ended, but what it started was still running 30 s later and is killed now: \(names)")
    }
    process.waitUntilExit()
    _ = outData.waitForEnd(seconds: 10) && errData.waitForEnd(seconds: 10)
    return (process.terminationStatus, outData.text, errData.text)
}

/// Whether `pid` has exited (a zombie not yet reaped counts as ended).
private func hasEnded(_ pid: pid_t) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let name = stat.lastIndex(of: ")"), let state = stat[name...].dropFirst(2).first
    else { return true }
    return state == "Z" || state == "X"
}

/// What the descriptors of `pid` point at ("pipe:[123]", "socket:[456]", paths).
private func descriptorTargets(of pid: pid_t) -> [String] {
    let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
    return descriptors.compactMap {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")
    }
}

private func pipeName(_ pipe: Pipe) -> String {
    var status = stat()
    fstat(pipe.fileHandleForReading.fileDescriptor, &status)
    return "pipe:[\(status.st_ino)]"
}

/// Other processes with a descriptor on any of `targets` (found in /proc).
private func processesHolding(_ targets: Set<String>) -> [pid_t] {
    let processes = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return processes.compactMap { entry in
        guard let pid = pid_t(entry), pid != getpid() else { return nil }
        return descriptorTargets(of: pid).contains(where: targets.contains) ? pid : nil
    }
}

/// Bytes a reader thread collects from a pipe for `runBounded`, readable while it still reads.
private final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private let ended = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                lock.withLock { data.append(chunk) }
            }
            ended.signal()
        }
    }

    /// Whether the writers closed the pipe within `seconds`.
    func waitForEnd(seconds: Double) -> Bool {
        guard ended.wait(timeout: .now() + seconds) == .success else { return false }
        ended.signal()
        return true
    }

    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
}

/// Runs the built `sfkd` as a user would, bounded in time.
public func runSFKD(_ arguments: [String], timeout: TimeInterval = 120, environment: [String: String]? = nil) throws
    -> (status: Int32, stdout: String, stderr: String)
{
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try sfkdExecutable())
    process.arguments = arguments
    if let environment { process.environment = environment }
    return try runBounded(process, timeout: timeout)
}

/// This test process may itself be an MPI singleton (GradientSync tests use the world
/// communicator); its Open MPI and PMIx variables would make a child mpirun refuse to start.
public func environmentWithoutMPI() -> [String: String] {
    ProcessInfo.processInfo.environment.filter { key, _ in
        !["OMPI_", "PMIX_", "OPAL_", "ORTE_", "PRTE_"].contains { key.hasPrefix($0) }
    }
}

/// Runs the built `sfkd` under `mpirun -n ranks`, bounded in time. Heavy runs prefer the
/// release build. `"{sfkd}"` in `arguments` stands for the executable (for MPMD jobs with ":").
/// `whileRunning` gets mpirun's process once it started (to signal ranks in failure tests).
public func mpirun(
    _ ranks: Int, _ arguments: [String], timeout: TimeInterval = 180, release: Bool = false,
    whileRunning: ((Process) -> Void)? = nil
) throws -> (status: Int32, stdout: String, stderr: String) {
    let sfkd = try sfkdExecutable(preferring: release ? "release" : nil)
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/mpirun") else {
        throw XCTSkip("mpirun is not installed (launch/install-deps)")
    }
    var flags = ["-n", String(ranks)]
    if getuid() == 0 { flags.append("--allow-run-as-root") }
    if ranks > ProcessInfo.processInfo.activeProcessorCount { flags.append("--oversubscribe") }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
    process.arguments =
        arguments.contains("{sfkd}")
        ? flags + arguments.map { $0 == "{sfkd}" ? sfkd : $0 }
        : flags + [sfkd] + arguments
    process.environment = environmentWithoutMPI()
    return try runBounded(process, timeout: timeout, whileRunning: whileRunning)
}

extension Process {
    /// Standard output of a short command (no time bound: for `ip` and the like).
    public static func output(_ executable: String, _ arguments: [String]) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return data
    }
}
