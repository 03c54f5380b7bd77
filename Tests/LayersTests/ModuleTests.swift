import Foundation
import Layers
import Tensors
import XCTest

final class ModuleTests: XCTestCase {
    final class Block: Layer {
        let conv1: Conv2d
        let bn1: BatchNorm2d
        var isTraining = true
        init(generator: inout RandomGenerator) {
            conv1 = Conv2d(
                inputChannels: 3, outputChannels: 4, kernelSize: 3, padding: 1, bias: false, generator: &generator)
            bn1 = BatchNorm2d(channels: 4)
        }
        var children: [(String, any Module)] { [("conv1", conv1), ("bn1", bn1)] }
        func callAsFunction(_ x: Tensor) -> Tensor { relu(bn1(conv1(x))) }
    }

    func testDottedNamesTrainEvalAndCounts() {
        var generator = RandomGenerator(seed: 1)
        let model = Sequential([Block(generator: &generator), Block(generator: &generator)])
        XCTAssertEqual(
            model.namedParameters().map { $0.0 },
            ["0.conv1.weight", "0.bn1.weight", "0.bn1.bias", "1.conv1.weight", "1.bn1.weight", "1.bn1.bias"])
        XCTAssertEqual(
            model.namedBuffers().map { $0.0 }.prefix(3),
            ["0.bn1.running_mean", "0.bn1.running_var", "0.bn1.num_batches_tracked"])
        XCTAssertEqual(model.parameterCount, 2 * (4 * 3 * 9 + 8))
        model.eval()
        XCTAssertFalse((model.layers[1] as! Block).bn1.isTraining)
        model.train()
        XCTAssertTrue((model.layers[1] as! Block).bn1.isTraining)
    }

    func testPyTorchDefaultInitialisationBounds() {
        var generator = RandomGenerator(seed: 2)
        let layer = Linear(inputDimensions: 16, outputDimensions: 300, generator: &generator)
        let values = layer.weight.array
        XCTAssertLessThanOrEqual(values.map { Swift.abs($0) }.max()!, 0.25)
        XCTAssertGreaterThan(values.map { Swift.abs($0) }.max()!, 0.24)
        let mean = values.reduce(0, +) / Float(values.count)
        XCTAssertLessThan(Swift.abs(mean), 0.01)
    }

    func testMultiHeadAttentionMatchesManualComposition() {
        var generator = RandomGenerator(seed: 3)
        let attention = MultiHeadAttention(dimensions: 8, heads: 2, generator: &generator)
        XCTAssertEqual(
            attention.namedParameters().map { $0.0 }, ["qkv.weight", "qkv.bias", "proj.weight", "proj.bias"])
        let x = Tensor((0..<(2 * 3 * 8)).map { Float($0 % 7) * 0.1 - 0.3 }, shape: [2, 3, 8])
        let y = withNoGrad { attention(x) }
        // Head h of token i reads columns [h*4, h*4+4) of q, k and v.
        let qkv = withNoGrad { attention.qkv(x) }
        var concatenated = [Float](repeating: 0, count: 2 * 3 * 8)
        for b in 0..<2 {
            for h in 0..<2 {
                for i in 0..<3 {
                    var scores = (0..<3).map { j -> Float in
                        (0..<4).reduce(0) {
                            $0 + qkv.data[(b * 3 + i) * 24 + h * 4 + $1] * qkv.data[(b * 3 + j) * 24 + 8 + h * 4 + $1]
                        } / 2
                    }
                    let m = scores.max()!
                    scores = scores.map { Foundation.exp($0 - m) }
                    let total = scores.reduce(0, +)
                    for d in 0..<4 {
                        concatenated[(b * 3 + i) * 8 + h * 4 + d] = (0..<3).reduce(0) {
                            $0 + scores[$1] / total * qkv.data[(b * 3 + $1) * 24 + 16 + h * 4 + d]
                        }
                    }
                }
            }
        }
        let expected = withNoGrad { attention.proj(Tensor(concatenated, shape: [2, 3, 8])) }
        for i in 0..<y.count { XCTAssertEqual(y.data[i], expected.data[i], accuracy: 1e-5) }
        // Every parameter gets a gradient.
        attention(x).sum().backward()
        for (name, p) in attention.namedParameters() { XCTAssertNotNil(p.grad, name) }
    }
}
