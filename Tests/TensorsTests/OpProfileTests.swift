import Tensors
import XCTest

/// `OpProfile` attributes each op's forward and backward time to the family the op names.
final class OpProfileTests: XCTestCase {
    func testOpsAreTimedByTheirFamily() {
        XCTAssertEqual(OpFamily.convolution.rawValue, "convolution (unfold + GEMM, depthwise)")
        let x = Tensor(repeating: 0.5, shape: [2, 3, 8, 8]), w = Tensor(repeating: 0.1, shape: [4, 3, 3, 3])
        w.requiresGrad = true
        OpProfile.reset()
        OpProfile.isEnabled = true
        defer { OpProfile.isEnabled = false }
        let y = relu(conv2d(x, weight: w, padding: (1, 1))).sum()
        y.backward()
        let convolution = "convolution (unfold + GEMM, depthwise)"
        XCTAssertGreaterThan(OpProfile.forward[convolution] ?? 0, 0)
        XCTAssertGreaterThan(OpProfile.backward[convolution] ?? 0, 0)
        XCTAssertNotNil(OpProfile.backward["elementwise"])
        XCTAssertNotNil(OpProfile.forward["reductions, softmax, losses"])
        XCTAssertNil(OpProfile.forward["GEMM (matmul, linear)"], "no matmul ran")
    }

    /// Ops with nothing to record (a frozen teacher's, under no-grad) are timed under their own
    /// family too, not the next op that records.
    func testOpsWithoutGradientsAreTimedByTheirFamily() {
        let x = Tensor(repeating: 0.5, shape: [64, 64]), w = Tensor(repeating: 0.1, shape: [64, 64])
        OpProfile.reset()
        OpProfile.isEnabled = true
        defer { OpProfile.isEnabled = false }
        _ = withNoGrad { relu(linear(x, weight: w, bias: nil)).reshape([4096]) }
        for family in [OpFamily.gemm, .elementwise, .copies] {
            XCTAssertGreaterThan(OpProfile.forward[family.rawValue] ?? 0, 0, family.rawValue)
        }
    }
}
