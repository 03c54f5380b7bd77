import Tensors
import XCTest

final class BLASCoreTests: XCTestCase {
    func testGenericCoresAreUpgradedByCPUFlags() {
        let avx512: Set<String> = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"]
        XCTAssertEqual(BLASCore.preferredCore(detected: "Prescott", flags: avx512), "SkylakeX")
        XCTAssertEqual(BLASCore.preferredCore(detected: "Prescott", flags: ["avx2", "fma"]), "Haswell")
        XCTAssertEqual(BLASCore.preferredCore(detected: "Core2", flags: ["sse3"]), nil)
        // A recognised core is never overridden.
        XCTAssertEqual(BLASCore.preferredCore(detected: "Zen", flags: avx512), nil)
        XCTAssertEqual(BLASCore.preferredCore(detected: "SkylakeX", flags: avx512), nil)
    }

    func testSelfCheckPassesOnTheRunningCore() throws {
        try BLASCore.selfCheck()
        XCTAssertFalse(BLASCore.coreName.isEmpty)
        XCTAssertTrue(BLASCore.configuration.contains("OpenBLAS"))
    }

}
