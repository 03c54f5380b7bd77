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
        let result = try mpirun(3, ["bench", "allreduce", "--json", "--max-mb", "1", "--repeats", "3"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], result.stdout)
        XCTAssertEqual(object["world_size"] as? Int, 3)
        XCTAssertEqual(object["verified"] as? Bool, true)
        XCTAssertEqual((object["sizes"] as? [[String: Any]])?.map { $0["bytes"] as? Int }, [4096, 16384, 65536, 262_144, 1_048_576])
    }
}
