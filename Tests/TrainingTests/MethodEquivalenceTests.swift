import Data
import Foundation
import ModelFiles
import Models
import Tensors
import TestSupport
import Training
import XCTest

/// KD, DKD, FitNet and OFA step for step against their reference code: 20 optimizer steps of
/// mdistiller's and OFAKD's training step, written by `launch/interop/make-method-fixtures`
/// (torch + timm) from the same initial weights and batches. sfkd runs its own `TrainingStep`
/// on them and must log the same loss terms and end at the same weights.
final class MethodEquivalenceTests: XCTestCase {
    let fixtures = packageRoot.appendingPathComponent("Tests/Fixtures/methods").path

    func testKD() throws { try checkCase("kd") }
    func testDKD() throws { try checkCase("dkd") }
    func testFitNet() throws { try checkCase("fitnet") }
    func testOFAOnATokenStudent() throws { try checkCase("ofa") }
    func testOFAOnACNNStudent() throws { try checkCase("ofa-cnn") }

    /// Runs one fixture's 20 steps in sfkd and compares every logged term (1e-4 relative to the
    /// step's total) and every final parameter and statistic (1e-4 relative, in norm).
    func checkCase(_ name: String) throws {
        let shared = try SafeTensors.read("\(fixtures)/batches-and-teacher.safetensors")
        let fixture = try SafeTensors.read("\(fixtures)/\(name).safetensors")
        let meta = fixture.metadata
        let classes = Int(meta["classes"]!)!, steps = Int(meta["steps"]!)!
        let images = shared.tensors["images"]!, labels = shared.tensors["labels"]!
        let batch = images.shape[1], imageShape = Array(images.shape.dropFirst(2))

        let teacher = try ModelRegistry.make(
            meta["teacher"]!, inputShape: imageShape, classes: classes, seed: 0,
            arguments: ModelArguments(meta["teacher_args"]!))
        try load(teacher.stateDict(), from: shared, prefix: "teacher.", what: "teacher")

        let optimizer = try JSONSerialization.jsonObject(with: Data(meta["optimizer"]!.utf8)) as! [String: Any]
        var config = TrainingConfig()
        config.model = meta["student"]!
        config.modelArguments = meta["student_args"]!
        config.dataset = "fixture"
        config.batchSize = batch
        config.steps = steps
        config.output = try temporaryFolder(self)
        try config.apply(
            yaml: """
                method: \(meta["method"]!)
                optimizer: \(optimizer["optimizer"]!)
                lr: \(optimizer["lr"]!)
                momentum: \(optimizer["momentum"]!)
                nesterov: false
                weight_decay: \(optimizer["weight_decay"]!)
                label_smoothing: \(meta["label_smoothing"]!)
                schedule: constant
                warmup_epochs: 0
                """, source: "fixture")
        if let clip = optimizer["clip"] as? Double { config.clipGradientNorm = clip }
        try config.apply(yaml: meta["settings"]!, source: "fixture settings")
        let setup = try TrainingSetup(
            config: config, splits: splits(shape: imageShape, classes: classes, count: 4 * batch), teacher: teacher)
        let state = setup.modules.student.stateDict().map { ("student.\($0.0)", $0.1) } + setup.modules.helperState
        try load(state, from: fixture, prefix: "initial.", what: "\(name) initial")

        let replicas = try setup.makeReplicas()
        let step = try setup.makeStep(replicas: replicas)
        let distinct = images.shape[0], pixels = images.count / distinct
        for index in 0..<steps {
            let k = index % distinct
            let x = Tensor(uninitializedShape: [batch] + imageShape)
            x.data.update(from: images.data + k * pixels, count: pixels)
            let y = (0..<batch).map { Int(labels.data[k * batch + $0]) }
            let result = try step.run(
                Batch(images: x, labels: y, indices: Array(0..<batch)), step: index,
                learningRate: Float(optimizer["lr"] as! Double))
            let total = Double(fixture.tensors["terms.total"]!.data[index])
            XCTAssertEqual(
                Double(result.statistics.loss), total, accuracy: 1e-4 * abs(total), "\(name) step \(index): total")
            let expectedTerms = fixture.names.filter { $0.hasPrefix("terms.") && $0 != "terms.total" }
            XCTAssertEqual(
                Set(result.statistics.terms.keys), Set(expectedTerms.map { String($0.dropFirst(6)) }), "\(name) terms")
            for term in expectedTerms {
                let expected = Double(fixture.tensors[term]!.data[index])
                let got = result.statistics.terms[String(term.dropFirst(6))] ?? .nan
                XCTAssertEqual(got, expected, accuracy: 1e-4 * max(abs(total), 1e-3), "\(name) step \(index): \(term)")
            }
        }
        for (key, tensor) in state {
            let expected = try XCTUnwrap(fixture.tensors["final.\(key)"], "\(name): final.\(key)")
            var difference = 0.0, scale = 0.0
            for i in compared(key, count: tensor.count) {
                difference += pow(Double(tensor.data[i] - expected.data[i]), 2)
                scale += pow(Double(expected.data[i]), 2)
            }
            XCTAssertLessThanOrEqual(
                difference.squareRoot(), 1e-4 * max(scale.squareRoot(), 1e-6), "\(name): final \(key)")
        }
    }

    /// The elements of a parameter to compare: all but a key bias (the middle third of an
    /// attention's qkv bias), whose gradient is zero in exact arithmetic (softmax ignores a
    /// constant added to every key's score), so AdamW's first steps scale rounding noise to
    /// +-lr in the reference and in sfkd alike.
    func compared(_ key: String, count: Int) -> [Int] {
        guard key.hasSuffix("attn.qkv.bias") else { return Array(0..<count) }
        return Array(0..<(count / 3)) + Array((2 * count / 3)..<count)
    }

    /// Copies `prefix`-named tensors of `file` into `state`; names and shapes must match both ways.
    func load(_ state: [(String, Tensor)], from file: SafeTensors.Contents, prefix: String, what: String) throws {
        let names = Set(state.map(\.0))
        let offered = Set(file.names.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) })
        XCTAssertEqual(names.subtracting(offered), [], "\(what): in sfkd, not in the reference")
        XCTAssertEqual(offered.subtracting(names), [], "\(what): in the reference, not in sfkd")
        for (key, tensor) in state {
            let saved = try XCTUnwrap(file.tensors[prefix + key], "\(what): \(key)")
            XCTAssertEqual(saved.shape, tensor.shape, "\(what): \(key)")
            if saved.shape == tensor.shape { tensor.copyValues(from: saved) }
        }
    }

    /// Stand-in splits of the fixture's image shape (the batches come from the fixture).
    func splits(shape: [Int], classes: Int, count: Int) -> DatasetSplits {
        let pixels = [UInt8](repeating: 128, count: count * shape.reduce(1, *))
        let labels = (0..<count).map { Int32($0 % classes) }
        let dataset = ImageDataset(name: "fixture", shape: shape, classes: classes, pixels: pixels, labels: labels)
        return DatasetSplits(
            train: dataset, test: dataset, mean: [Float](repeating: 0, count: shape[0]),
            std: [Float](repeating: 1, count: shape[0]), defaultAugmentation: Augmentation())
    }
}
