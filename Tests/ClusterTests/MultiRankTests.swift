import Foundation
import XCTest

#if DEBUG
let configurations = ["debug", "release"]
#else
let configurations = ["release", "debug"]
#endif

/// Runs the built `sfkd` under `mpirun -n ranks`, bounded in time.
func mpirun(_ ranks: Int, _ arguments: [String], timeout: TimeInterval = 180) throws -> (status: Int32, stdout: String, stderr: String) {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    guard let sfkd = configurations.map({ root.appendingPathComponent(".build/\($0)/sfkd").path }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw XCTSkip("sfkd is not built")
    }
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/mpirun") else { throw XCTSkip("mpirun is not installed (launch/install-deps)") }
    var flags = ["-n", String(ranks)]
    if getuid() == 0 { flags.append("--allow-run-as-root") }
    if ranks > ProcessInfo.processInfo.activeProcessorCount { flags.append("--oversubscribe") }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
    process.arguments = flags + [sfkd] + arguments
    // This test process may itself be an MPI singleton (GradientSync tests use the world
    // communicator); its Open MPI and PMIx variables would make the child mpirun refuse to start.
    process.environment = ProcessInfo.processInfo.environment.filter { key, _ in
        !["OMPI_", "PMIX_", "OPAL_", "ORTE_", "PRTE_"].contains { key.hasPrefix($0) }
    }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    var outData = Data(), errData = Data()
    let group = DispatchGroup()
    group.enter(); DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter(); DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
    if process.isRunning {
        process.terminate()
        XCTFail("mpirun -n \(ranks) sfkd \(arguments.joined(separator: " ")) did not finish within \(timeout) s")
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
