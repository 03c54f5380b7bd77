import Foundation
import XCTest

/// The executable built alongside these tests first, so a stale build of the other kind is not used.
#if DEBUG
let builtConfigurations = ["debug", "release"]
#else
let builtConfigurations = ["release", "debug"]
#endif

/// Runs the built `sfkd` executable, as a user would.
func runSFKD(_ arguments: [String], timeout: TimeInterval = 120) throws -> (status: Int32, stdout: String, stderr: String) {
    let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let candidates = builtConfigurations.map { packageRoot.appendingPathComponent(".build/\($0)/sfkd").path }
    guard let executable = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw XCTSkip("sfkd is not built (looked for \(candidates))")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    var outData = Data(), errData = Data()
    let group = DispatchGroup()
    group.enter(); DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter(); DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
    if process.isRunning {
        process.terminate()
        XCTFail("sfkd \(arguments.joined(separator: " ")) did not finish within \(timeout) s")
    }
    process.waitUntilExit()
    group.wait()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

final class CLITests: XCTestCase {
    func testInfoJSONIsOneObjectWithTheRuntimeFacts() throws {
        let result = try runSFKD(["info", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let blas = try XCTUnwrap(object?["openblas"] as? [String: Any])
        XCTAssertFalse((blas["core"] as? String ?? "").isEmpty)
        XCTAssertNotNil(blas["core_reason"] as? String)
        XCTAssertGreaterThanOrEqual(blas["threads"] as? Int ?? 0, 1)
        let mpi = try XCTUnwrap(object?["mpi"] as? [String: Any])
        XCTAssertEqual(mpi["world_size"] as? Int, 1)
        XCTAssertEqual(mpi["rank"] as? Int, 0)
        XCTAssertEqual(mpi["thread_level"] as? String, "MPI_THREAD_MULTIPLE")
        XCTAssertNotNil((object?["fftw"] as? [String: Any])?["version"])
        XCTAssertNotNil(object?["models"] as? [Any])
        XCTAssertNotNil(object?["datasets"] as? [Any])
    }

    func testUserSetCoreIsRespected() throws {
        // Runs a child with an explicit core: sfkd must keep it and say the user chose it.
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        guard let executable = builtConfigurations.map({ packageRoot.appendingPathComponent(".build/\($0)/sfkd").path })
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else { throw XCTSkip("sfkd is not built") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["info", "--json"]
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_CORETYPE"] = "Prescott"
        environment.removeValue(forKey: "SFKD_BLAS_CORE_REASON")
        process.environment = environment
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        let blas = try XCTUnwrap(object?["openblas"] as? [String: Any])
        XCTAssertEqual(blas["core"] as? String, "Prescott")
        XCTAssertEqual(blas["core_reason"] as? String, "set by the user (OPENBLAS_CORETYPE=Prescott)")
    }

    func testBadBenchFlagsAreClearErrors() throws {
        let result = try runSFKD(["bench", "ops", "--threads", "0"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("--threads must be at least 1"), result.stderr)
    }
}
