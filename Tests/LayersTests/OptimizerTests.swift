import Layers
import Tensors
import XCTest

final class OptimizerTests: XCTestCase {
    func parameter(_ values: [Float], grad: [Float]) -> Tensor {
        let p = Tensor(values, shape: [values.count], requiresGrad: true)
        p.grad = Tensor(grad, shape: [grad.count])
        return p
    }

    func testSGDMomentumWeightDecay() {
        // PyTorch: buf1 = g + wd*p; p1 = p - lr*buf1; then buf2 = m*buf1 + (g + wd*p1); p2 = p1 - lr*buf2
        let p = parameter([1.0, -2.0], grad: [0.5, 0.25])
        let sgd = SGD(groups: [ParameterGroup(parameters: [p], weightDecay: 0.1)], learningRate: 0.1, momentum: 0.9)
        sgd.step()
        let d1: [Float] = [0.5 + 0.1 * 1.0, 0.25 + 0.1 * -2.0]
        let p1: [Float] = [1.0 - 0.1 * d1[0], -2.0 - 0.1 * d1[1]]
        XCTAssertEqual(p.array[0], p1[0], accuracy: 1e-6)
        XCTAssertEqual(p.array[1], p1[1], accuracy: 1e-6)
        sgd.step()
        let b2: [Float] = [0.9 * d1[0] + (0.5 + 0.1 * p1[0]), 0.9 * d1[1] + (0.25 + 0.1 * p1[1])]
        XCTAssertEqual(p.array[0], p1[0] - 0.1 * b2[0], accuracy: 1e-6)
        XCTAssertEqual(p.array[1], p1[1] - 0.1 * b2[1], accuracy: 1e-6)
    }

    func testSGDNesterov() {
        let p = parameter([1.0], grad: [1.0])
        let sgd = SGD(
            groups: [ParameterGroup(parameters: [p], weightDecay: 0)], learningRate: 0.5, momentum: 0.5, nesterov: true)
        sgd.step()  // buf = 1, update = 1 + 0.5 * 1 = 1.5
        XCTAssertEqual(p.item, 1 - 0.75, accuracy: 1e-6)
        sgd.step()  // buf = 0.5 * 1 + 1 = 1.5, update = 1 + 0.5 * 1.5 = 1.75
        XCTAssertEqual(p.item, 0.25 - 0.875, accuracy: 1e-6)
    }

    func testAdamW() {
        let p = parameter([1.0, 2.0], grad: [0.1, -0.3])
        let adam = AdamW(groups: [ParameterGroup(parameters: [p], weightDecay: 0.01)], learningRate: 0.1)
        var w: [Double] = [1.0, 2.0], m: [Double] = [0, 0], v: [Double] = [0, 0]
        let g: [Double] = [0.1, -0.3]
        for t in 1...3 {
            adam.step()
            for i in 0..<2 {
                w[i] *= 1 - 0.1 * 0.01
                m[i] = 0.9 * m[i] + 0.1 * g[i]
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i]
                let mHat = m[i] / (1 - pow(0.9, Double(t))), vHat = v[i] / (1 - pow(0.999, Double(t)))
                w[i] -= 0.1 * mHat / (vHat.squareRoot() + 1e-8)
            }
            XCTAssertEqual(Double(p.array[0]), w[0], accuracy: 1e-5)
            XCTAssertEqual(Double(p.array[1]), w[1], accuracy: 1e-5)
        }
    }

    func testOptimizerStateRoundTrip() throws {
        let p = parameter([1, 2, 3], grad: [0.1, 0.2, 0.3])
        let adam = AdamW(groups: [ParameterGroup(parameters: [p], names: ["w"], weightDecay: 0)], learningRate: 0.1)
        adam.step()
        let saved = Dictionary(uniqueKeysWithValues: adam.stateTensors().map { ($0.0, $0.1.copy()) })
        XCTAssertEqual(Set(saved.keys), ["w.exp_avg", "w.exp_avg_sq"])
        let q = parameter(p.array, grad: [0.1, 0.2, 0.3])
        let restored = AdamW(groups: [ParameterGroup(parameters: [q], names: ["w"], weightDecay: 0)], learningRate: 0.1)
        try restored.restore(stepCount: adam.stepCount, state: saved)
        adam.step()
        restored.step()
        XCTAssertEqual(p.array, q.array)
        XCTAssertThrowsError(try restored.restore(stepCount: 1, state: [:]))
    }

    func testParameterGroupsExemptNormsAndBiases() {
        var generator = RandomGenerator(seed: 1)
        let model = Sequential([
            Linear(inputDimensions: 3, outputDimensions: 4, generator: &generator), LayerNorm(dimensions: 4),
        ])
        let groups = ParameterGroup.decayAndNoDecay(model.namedParameters(), weightDecay: 0.05)
        XCTAssertEqual(groups[0].names, ["0.weight"])
        XCTAssertEqual(groups[1].names, ["0.bias", "1.weight", "1.bias"])
        XCTAssertEqual(groups[1].weightDecay, 0)
    }

    func testGradientClipping() {
        let a = parameter([0, 0], grad: [3, 0]), b = parameter([0], grad: [4])
        let norm = clipGradientNorm([a, b], maxNorm: 1)
        XCTAssertEqual(norm, 5, accuracy: 1e-6)
        XCTAssertEqual(a.grad!.array[0], 0.6, accuracy: 1e-5)
        XCTAssertEqual(b.grad!.array[0], 0.8, accuracy: 1e-5)
        XCTAssertEqual(clipGradientNorm([a, b], maxNorm: 10), 1, accuracy: 1e-4)
        XCTAssertEqual(b.grad!.array[0], 0.8, accuracy: 1e-5)
    }

    func testSchedules() {
        let cosine = WarmupCosineSchedule(base: 1, warmupSteps: 10, totalSteps: 110, minimum: 0.1, warmupStartFactor: 0)
        XCTAssertEqual(cosine.learningRate(atStep: 0), 0, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(atStep: 5), 0.5, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(atStep: 10), 1, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(atStep: 60), 0.55, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(atStep: 110), 0.1, accuracy: 1e-6)
        let steps = StepDecaySchedule(base: 0.1, stepSize: 30, gamma: 0.1)
        XCTAssertEqual(steps.learningRate(atStep: 29), 0.1, accuracy: 1e-7)
        XCTAssertEqual(steps.learningRate(atStep: 30), 0.01, accuracy: 1e-7)
        XCTAssertEqual(steps.learningRate(atStep: 65), 0.001, accuracy: 1e-7)
    }
}
