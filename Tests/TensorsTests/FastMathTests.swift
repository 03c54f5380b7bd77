import Foundation
import Tensors
import XCTest

final class FastMathTests: XCTestCase {
    func testExpAndErfAgainstTheCLibrary() {
        var worstExp: Float = 0, worstErf: Float = 0
        var x: Float = -30
        while x < 30 {
            let lanes = SIMD8<Float>((0..<8).map { x + Float($0) * 0.0013 })
            let e = fastExp(lanes), f = fastErf(lanes * 0.2)
            for k in 0..<8 {
                let reference = Foundation.exp(lanes[k])
                worstExp = max(worstExp, Swift.abs(e[k] - reference) / reference)
                worstErf = max(worstErf, Swift.abs(f[k] - Foundation.erf(lanes[k] * 0.2)))
            }
            x += 0.0137
        }
        XCTAssertLessThan(worstExp, 5e-7, "relative error of fastExp")
        XCTAssertLessThan(worstErf, 5e-7, "absolute error of fastErf")
        XCTAssertEqual(fastExp(SIMD8(repeating: -200))[0], 0, accuracy: 1e-37)
        XCTAssertTrue(fastExp(SIMD8(repeating: 0))[3] == 1)
    }
}
