import Foundation
import XCTest

#if DEBUG
let configurations = ["debug", "release"]
#else
let configurations = ["release", "debug"]
#endif

/// The built `sfkd`, preferring `configuration`'s build.
func sfkdExecutable(preferring configuration: String? = nil) throws -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let order = configuration.map { preferred in [preferred] + configurations.filter { $0 != preferred } } ?? configurations
    guard let sfkd = order.map({ root.appendingPathComponent(".build/\($0)/sfkd").path }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw XCTSkip("sfkd is not built")
    }
    return sfkd
}

/// Runs the built `sfkd` under `mpirun -n ranks`, bounded in time. Heavy runs prefer the
/// release build. `"{sfkd}"` in `arguments` stands for the executable (for MPMD jobs with ":").
/// `whileRunning` gets mpirun's process once it started (to signal ranks in failure tests).
func mpirun(_ ranks: Int, _ arguments: [String], timeout: TimeInterval = 180, release: Bool = false,
            whileRunning: ((Process) -> Void)? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    let sfkd = try sfkdExecutable(preferring: release ? "release" : nil)
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/mpirun") else { throw XCTSkip("mpirun is not installed (launch/install-deps)") }
    var flags = ["-n", String(ranks)]
    if getuid() == 0 { flags.append("--allow-run-as-root") }
    if ranks > ProcessInfo.processInfo.activeProcessorCount { flags.append("--oversubscribe") }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
    process.arguments = arguments.contains("{sfkd}")
        ? flags + arguments.map { $0 == "{sfkd}" ? sfkd : $0 }
        : flags + [sfkd] + arguments
    process.environment = environmentWithoutMPI()
    return try runBounded(process, timeout: timeout, whileRunning: whileRunning)
}

/// This test process may itself be an MPI singleton (GradientSync tests use the world
/// communicator); its Open MPI and PMIx variables would make a child mpirun refuse to start.
func environmentWithoutMPI() -> [String: String] {
    ProcessInfo.processInfo.environment.filter { key, _ in
        !["OMPI_", "PMIX_", "OPAL_", "ORTE_", "PRTE_"].contains { key.hasPrefix($0) }
    }
}

/// Runs `process` to its end, at most `timeout` seconds (then interrupts it and fails the test),
/// collecting its output; `whileRunning` gets it once started.
func runBounded(_ process: Process, timeout: TimeInterval, whileRunning: ((Process) -> Void)? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    var outData = Data(), errData = Data()
    let group = DispatchGroup()
    group.enter(); DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter(); DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    whileRunning?(process)
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
    if process.isRunning {
        process.interrupt()
        XCTFail("\(process.executableURL!.path) \(process.arguments!.joined(separator: " ")) did not finish within \(timeout) s")
    }
    process.waitUntilExit()
    group.wait()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

final class MultiRankTests: XCTestCase {
    func testInfoSeesTheWholeWorldAndOnlyRankZeroPrints() throws {
        let result = try mpirun(2, ["info", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        XCTAssertEqual((object?["mpi"] as? [String: Any])?["world_size"] as? Int, 2)
    }

    func testAllreduceThroughTheCommunicatorIsCorrectOnThreeRanks() throws {
        let result = try mpirun(3, ["bench", "allreduce", "--json", "--max-mb", "1", "--repeats", "3"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], result.stdout)
        XCTAssertEqual(object["world_size"] as? Int, 3)
        XCTAssertEqual(object["verified"] as? Bool, true)
        XCTAssertEqual((object["sizes"] as? [[String: Any]])?.map { $0["bytes"] as? Int }, [4096, 16384, 65536, 262_144, 1_048_576])
    }
}
