import Foundation
import TestSupport
import XCTest

final class MultiRankTests: XCTestCase {
    func testInfoSeesTheWholeWorldAndOnlyRankZeroPrints() throws {
        let result = try mpirun(2, ["info", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        XCTAssertEqual((object?["mpi"] as? [String: Any])?["world_size"] as? Int, 2)
    }

    func testAllreduceThroughTheCommunicatorIsCorrectOnThreeRanks() throws {
        let result = try mpirun(3, ["bench", "allreduce", "--json", "--max-mb", "1", "--repeats", "3", "--fit"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], result.stdout)
        XCTAssertEqual(object["world_size"] as? Int, 3)
        // Allreduce, reduce-scatter (each rank's block) and in-place all-gather all verified.
        XCTAssertEqual(object["verified"] as? Bool, true)
        // Sizes are whole numbers of one block per rank.
        let sizes = try XCTUnwrap(object["sizes"] as? [[String: Any]])
        XCTAssertEqual(
            sizes.map { $0["bytes"] as? Int }, [4096, 16384, 65536, 262_144, 1_048_576].map { $0 / 12 * 12 })
        for row in sizes {
            for key in ["communicator_seconds", "direct_seconds", "reduce_scatter_seconds", "allgather_seconds"] {
                XCTAssertGreaterThan(row[key] as? Double ?? 0, 0, key)
            }
        }
        // The fitted link: a positive seconds-per-byte of a plausible bandwidth.
        let fit = try XCTUnwrap(object["fit"] as? [String: Any])
        let beta = try XCTUnwrap(fit["beta_seconds_per_byte"] as? Double)
        XCTAssertTrue((1e-12...1e-7).contains(beta), "beta \(beta) s/byte")
    }
}
