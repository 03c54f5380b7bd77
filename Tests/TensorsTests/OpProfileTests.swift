import Tensors
import XCTest

/// `OpProfile` attributes each op's forward and backward time to the family of its source file.
final class OpProfileTests: XCTestCase {
    func testOpsAreTimedByTheirFamily() {
        XCTAssertEqual(OpProfile.family(of: "Tensors/Conv2d.swift"), "convolution (unfold + GEMM, depthwise)")
        XCTAssertEqual(OpProfile.family(of: "Spectral/HaarDWT.swift"), "spectral (Haar DWT, FFT loss)")
        XCTAssertEqual(OpProfile.family(of: "Layers/Fused.swift"), "other (Fused)")
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
}
