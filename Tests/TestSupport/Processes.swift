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

/// Runs `process` to its end, at most `timeout` seconds (then interrupts it and fails the test),
/// collecting its output; `whileRunning` gets it once started.
public func runBounded(_ process: Process, timeout: TimeInterval, whileRunning: ((Process) -> Void)? = nil) throws -> (
    status: Int32, stdout: String, stderr: String
) {
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Both pipes are drained on their own threads (a full pipe would block the child); the
    // group's wait orders those writes before the reads below.
    let outData = Collected(), errData = Collected()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        outData.data = out.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    group.enter()
    DispatchQueue.global().async {
        errData.data = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    whileRunning?(process)
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
    if process.isRunning {
        process.interrupt()
        XCTFail(
            "\(process.executableURL!.path) \(process.arguments!.joined(separator: " ")) did not finish within \(timeout) s"
        )
    }
    process.waitUntilExit()
    group.wait()
    return (
        process.terminationStatus, String(decoding: outData.data, as: UTF8.self),
        String(decoding: errData.data, as: UTF8.self)
    )
}

/// Bytes a reader thread collects for `runBounded`.
private final class Collected: @unchecked Sendable {
    var data = Data()
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
