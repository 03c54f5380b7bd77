import Data
import Foundation
import Tensors
import XCTest

final class MixupTests: XCTestCase {
    /// Four constant images (sample k is all k) with labels 0...3.
    func constantBatch(height: Int = 6, width: Int = 8) -> Batch {
        let images = Tensor(zeros: [4, 2, height, width])
        for k in 0..<4 { for i in 0..<(2 * height * width) { images.data[k * 2 * height * width + i] = Float(k) } }
        return Batch(images: images, labels: [0, 1, 2, 3], indices: [10, 11, 12, 13])
    }

    func testMixupBlendsEachSampleWithTheOneHalfABatchAwayAndBlendsTheTargets() {
        var mixup = Mixup()
        mixup.mixupAlpha = 0.8
        mixup.labelSmoothing = 0.1
        let batch = constantBatch()
        let mixed = mixup.apply(to: batch, classes: 4, seed: 3, step: 7)
        let lambda = Float(mixup.draw(height: 6, width: 8, seed: 3, step: 7).lambda)
        XCTAssertTrue(lambda > 0 && lambda < 1)
        let size = 2 * 6 * 8
        for k in 0..<4 {
            let expected = Float(k) * lambda + Float((k + 2) % 4) * (1 - lambda)
            XCTAssertEqual(mixed.images.data[k * size + 5], expected, accuracy: 1e-5)
            let row = Array(UnsafeBufferPointer(start: mixed.softTargets!.data + 4 * k, count: 4))
            XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-5)
            XCTAssertEqual(
                row[k], 0.025 + 0.9 * lambda, accuracy: 1e-5, "smoothed one-hot share of the sample's own class")
            XCTAssertEqual(row[(k + 2) % 4], 0.025 + 0.9 * (1 - lambda), accuracy: 1e-5)
            XCTAssertEqual(mixed.labels[k], lambda >= 0.5 ? k : (k + 2) % 4, "the class with the larger share")
        }
        XCTAssertEqual(mixed.indices, batch.indices)
    }

    func testCutMixPastesThePartnersBoxAndCorrectsLambdaToItsArea() {
        var mixup = Mixup()
        mixup.cutmixAlpha = 1
        var found = false
        for step in 0..<20 {
            let draw = mixup.draw(height: 6, width: 8, seed: 1, step: step)
            guard let box = draw.box, box.bottom > box.top, box.right > box.left else { continue }
            found = true
            let mixed = mixup.apply(to: constantBatch(), classes: 4, seed: 1, step: step)
            let area = (box.bottom - box.top) * (box.right - box.left)
            XCTAssertEqual(draw.lambda, 1 - Double(area) / 48, accuracy: 1e-12)
            for row in 0..<6 {
                for column in 0..<8 {
                    let inside = row >= box.top && row < box.bottom && column >= box.left && column < box.right
                    XCTAssertEqual(
                        mixed.images.data[96 + row * 8 + column], inside ? 3 : 1, "sample 1 takes sample 3's box")
                }
            }
            break
        }
        XCTAssertTrue(found, "some step draws a non-empty box")
    }

    func testDrawsArePureFunctionsOfSeedAndStepAndFollowBeta() {
        var mixup = Mixup()
        mixup.mixupAlpha = 0.8
        mixup.cutmixAlpha = 1
        XCTAssertEqual(
            mixup.draw(height: 8, width: 8, seed: 5, step: 3), mixup.draw(height: 8, width: 8, seed: 5, step: 3))
        XCTAssertNotEqual(
            mixup.draw(height: 8, width: 8, seed: 5, step: 3), mixup.draw(height: 8, width: 8, seed: 5, step: 4))
        var off = mixup
        off.probability = 0
        XCTAssertEqual(off.draw(height: 8, width: 8, seed: 5, step: 3).lambda, 1)
        XCTAssertNil(off.draw(height: 8, width: 8, seed: 5, step: 3).box)
        // Mixup alone: lam ~ Beta(0.8, 0.8), mean 1/2, variance 1 / (4 (2a + 1)) = 0.0962.
        var mixOnly = Mixup()
        mixOnly.mixupAlpha = 0.8
        let samples = (0..<4000).map { mixOnly.draw(height: 8, width: 8, seed: 9, step: $0).lambda }
        let mean = samples.reduce(0, +) / 4000
        let variance = samples.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 4000
        XCTAssertEqual(mean, 0.5, accuracy: 0.02)
        XCTAssertEqual(variance, 1 / (4 * 2.6), accuracy: 0.008)
    }
}
