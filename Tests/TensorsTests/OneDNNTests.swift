import Foundation
import Tensors
import TestSupport
import XCTest

/// oneDNN runs inside sfkd's thread budget: on the calling thread, never on threads of its own.
final class OneDNNTests: XCTestCase {
    private var names: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []).map {
            (try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8)) ?? "?"
        }
    }

    private var threadCount: Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 0
    }

    /// With one thread, convolutions and products on oneDNN start no thread: Debian's oneDNN is
    /// built on OpenMP, which would otherwise start a team of one thread per core.
    func testOneDNNStartsNoThreadsOfItsOwn() {
        let previous = Threads.count
        defer { Threads.configure(previous) }
        Threads.configure(1)
        let x = randomTensor([8, 32, 16, 16], seed: 1), w = randomTensor([32, 32, 3, 3], seed: 2)
        let a = randomTensor([512, 256], seed: 3), b = randomTensor([256, 384], seed: 4)
        let before = threadCount, namesBefore = names
        for _ in 0..<3 {
            ConvolutionKernel.pinned(.oneDNN) {
                GEMMKernel.pinned(.oneDNN) {
                    x.requiresGrad = true
                    let y = conv2d(x, weight: w, padding: (1, 1))
                    y.backward(seed: y.detached())
                    x.zeroGrad()
                    _ = withNoGrad { matmul(a, b) }
                }
            }
        }
        XCTAssertGreaterThan(before, 0)
        XCTAssertEqual(threadCount, before, "oneDNN started threads: \(namesBefore) -> \(names)")
    }
}
