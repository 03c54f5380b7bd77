import Data
import Distill
import Foundation
import Layers
import Models
import Settings
import Spectral
import Tensors
import TestSupport
import XCTest

final class LogitLossTests: XCTestCase {
    func testKDMatchesItsFormula() {
        let s = randomTensor([3, 5], seed: 1), t = randomTensor([3, 5], seed: 2, requiresGrad: false)
        let loss = withNoGrad { knowledgeDistillationLoss(student: s, teacher: t, temperature: 4) }
        var expected = 0.0
        for b in 0..<3 {
            let zs = (0..<5).map { Double(s.data[b * 5 + $0]) / 4 }, zt = (0..<5).map { Double(t.data[b * 5 + $0]) / 4 }
            let ls = zs.map { $0 - log(zs.map(exp).reduce(0, +)) }, lt = zt.map { $0 - log(zt.map(exp).reduce(0, +)) }
            for c in 0..<5 { expected += exp(lt[c]) * (lt[c] - ls[c]) }
        }
        XCTAssertEqual(Double(loss.item), 16 * expected / 3, accuracy: 1e-5)
    }

    func testDKDParts() {
        // With beta = 0 DKD is tau^2 KL of the binary (target, rest) distributions.
        let s = randomTensor([2, 4], seed: 3), t = randomTensor([2, 4], seed: 4, requiresGrad: false)
        let labels = [1, 3]
        let loss = withNoGrad {
            decoupledKnowledgeDistillationLoss(
                student: s, teacher: t, labels: labels, alpha: 1, beta: 0, temperature: 2)
        }
        var expected = 0.0
        for b in 0..<2 {
            func target(_ z: Tensor) -> Double {
                let e = (0..<4).map { exp(Double(z.data[b * 4 + $0]) / 2) }
                return e[labels[b]] / e.reduce(0, +)
            }
            let ps = target(s), pt = target(t)
            expected += pt * log(pt / ps) + (1 - pt) * log((1 - pt) / (1 - ps))
        }
        XCTAssertEqual(Double(loss.item), 4 * expected / 2, accuracy: 1e-5)
        // Gradients reach the student through both parts.
        let full = decoupledKnowledgeDistillationLoss(
            student: s, teacher: t, labels: labels, alpha: 1, beta: 8, temperature: 4)
        full.backward()
        XCTAssertTrue(s.grad!.array.contains { $0 != 0 })
        XCTAssertTrue(full.item.isFinite)
    }

    func testOFAWithEpsilonOneIsCrossEntropyAgainstTheTeacher() {
        let s = randomTensor([3, 6], seed: 5, requiresGrad: false),
            t = randomTensor([3, 6], seed: 6, requiresGrad: false)
        let ofa = withNoGrad { ofaLoss(student: s, teacher: t, labels: [0, 2, 5], epsilon: 1) }
        let reference = withNoGrad { crossEntropy(s, softTargets: softmax(t)) }
        XCTAssertEqual(ofa.item, reference.item, accuracy: 1e-6)
        // epsilon != 1 raises (p_t + y) and subtracts y: the target class is weighted up.
        let sharper = withNoGrad { ofaLoss(student: s, teacher: t, labels: [0, 2, 5], epsilon: 2) }
        XCTAssertNotEqual(sharper.item, ofa.item)
    }
}

final class SFKDModuleTests: XCTestCase {
    func testPositionalEncodingValues() {
        let codes = PositionalEncoding4D.codes(width: 16, level: 2, orientation: .hl, rows: 3, columns: 2)
        XCTAssertEqual(codes.count, 3 * 2 * 16)
        // Token (row 1, column 1): chunks of 4 for level 2, orientation 2, row 1, column 1.
        let token = Array(codes[(1 * 2 + 1) * 16..<(1 * 2 + 2) * 16])
        XCTAssertEqual(token[0], Float(sin(2.0)), accuracy: 1e-6)
        XCTAssertEqual(token[1], Float(cos(2.0)), accuracy: 1e-6)
        XCTAssertEqual(token[2], Float(sin(2.0 / 100)), accuracy: 1e-6)  // 10000^(2/4) = 100
        XCTAssertEqual(token[4], Float(sin(2.0)), accuracy: 1e-6)  // orientation HL = 2
        XCTAssertEqual(token[8], Float(sin(1.0)), accuracy: 1e-6)  // row 1
        XCTAssertEqual(token[13], Float(cos(1.0)), accuracy: 1e-6)  // column 1
    }

    func testDS2SKeepsBandShapesAndTrains() {
        var generator = RandomGenerator(seed: 7)
        let refiner = DS2S(teacherChannels: 12, width: 8, generator: &generator)
        let x = randomTensor([2, 12, 7, 6], seed: 8)
        let bands = haarDWT(x, levels: 2)
        let refined = refiner(bands)
        XCTAssertEqual(refined.approximation.shape, bands.approximation.shape)
        for j in 0..<2 { XCTAssertEqual(refined.details[j].2.shape, bands.details[j].2.shape) }
        let back = haarIDWT(refined)
        XCTAssertEqual(back.shape, x.shape)
        square(back).mean().backward()
        for (name, p) in refiner.namedParameters() { XCTAssertNotNil(p.grad, name) }
        XCTAssertNotNil(x.grad)
        XCTAssertEqual(DS2S.defaultWidth(teacherChannels: 64), 64)
        XCTAssertEqual(DS2S.defaultWidth(teacherChannels: 20), 16)
        XCTAssertEqual(DS2S.defaultWidth(teacherChannels: 4), 8)
        XCTAssertEqual(TransBlock.heads(for: 16), 2)
    }

    func testChannelLayerNormNormalisesEachPosition() {
        let x = randomTensor([2, 5, 3, 4], seed: 9)
        let y = withNoGrad { channelLayerNorm(x) }
        for position in [0, 7, 11] {
            let values = (0..<5).map { Double(y.data[($0) * 12 + position]) }
            XCTAssertEqual(values.reduce(0, +) / 5, 0, accuracy: 1e-5)
            XCTAssertEqual(values.map { $0 * $0 }.reduce(0, +) / 5, 1, accuracy: 1e-3)
        }
    }
}

/// Methods that cannot be registered: a setting named like a training key, a name taken twice,
/// one setting declared two ways.
private final class ShadowingMethod: DistillationMethod {
    static let name = "shadowing"
    static let summary = "declares lr"
    static let needsTeacher = false
    static let settings = [Setting<Float>("lr", default: 1, help: "a second lr").spec]
    var helpers: [(String, any Module)] { [] }
    var teacherTapIndices: [Int] { [] }
    init(context: MethodContext) {}
    func loss(student: ModelOutput, teacher: ModelOutput?, targets: Targets, step: Int) -> ObjectiveLoss {
        fatalError()
    }
}

private final class RedeclaringMethod: DistillationMethod {
    static let name = "redeclaring"
    static let summary = "declares tau with another default"
    static let needsTeacher = true
    static let settings = [Setting<Float>("tau", default: 2, help: "another tau").spec]
    var helpers: [(String, any Module)] { [] }
    var teacherTapIndices: [Int] { [] }
    init(context: MethodContext) {}
    func loss(student: ModelOutput, teacher: ModelOutput?, targets: Targets, step: Int) -> ObjectiveLoss {
        fatalError()
    }
}

final class MethodRegistryTests: XCTestCase {
    func testAMethodThatWouldShadowOrRedefineAKeyIsRefused() {
        XCTAssertThrowsError(
            try MethodRegistry.settingsTable(
                MethodRegistry.methods + [ShadowingMethod.self], reserved: ["lr", "epochs"])
        ) {
            XCTAssertTrue(
                "\($0)".contains("method 'shadowing' declares the setting 'lr', which is a training key"), "\($0)")
        }
        XCTAssertThrowsError(
            try MethodRegistry.settingsTable(MethodRegistry.methods + [RedeclaringMethod.self], reserved: [])
        ) {
            XCTAssertTrue("\($0)".contains("declare 'tau' differently"), "\($0)")
        }
        XCTAssertThrowsError(try MethodRegistry.settingsTable([KD.self, KD.self], reserved: [])) {
            XCTAssertTrue("\($0)".contains("two methods are named 'kd'"), "\($0)")
        }
        XCTAssertNoThrow(try MethodRegistry.settingsTable(MethodRegistry.methods, reserved: ["lr", "epochs"]))
    }

    func testNamesAreUniqueAndSharedSettingsAgree() throws {
        XCTAssertEqual(Set(MethodRegistry.names).count, MethodRegistry.methods.count)
        XCTAssertEqual(MethodRegistry.names, ["none", "kd", "dkd", "fitnet", "ofa", "sfkd"])
        // A setting read by several methods is one declaration: same type, default, range and help.
        for method in MethodRegistry.methods {
            for spec in method.settings {
                let shared = try XCTUnwrap(MethodRegistry.settings.first { $0.spec.name == spec.name }?.spec)
                XCTAssertEqual(shared.kind, spec.kind, spec.name)
                XCTAssertEqual(shared.defaultValue, spec.defaultValue, spec.name)
                XCTAssertEqual(shared.range, spec.range, spec.name)
                XCTAssertEqual(shared.help, spec.help, spec.name)
            }
        }
        XCTAssertEqual(MethodRegistry.settings.first { $0.spec.name == "tau" }?.methods, ["kd", "dkd", "sfkd"])
        XCTAssertThrowsError(try MethodRegistry.method(named: "crd")) { error in
            XCTAssertTrue(
                "\(error)".contains("unknown method 'crd'; valid methods: none, kd, dkd, fitnet, ofa, sfkd"), "\(error)"
            )
        }
    }
}

final class DistillationObjectiveTests: XCTestCase {
    let resnetTaps: [(shape: [Int], layout: TapLayout)] = [
        ([1, 16, 8, 8], .spatial), ([1, 32, 4, 4], .spatial), ([1, 64, 2, 2], .spatial),
    ]
    let vitTaps: [(shape: [Int], layout: TapLayout)] = Array(
        repeating: ([1, 5, 128], .tokens(prefixTokens: 1, gridHeight: 2, gridWidth: 2)), count: 4)

    func method(_ name: String, stages: [Int] = [-2, -1], configure: (inout SettingValues) -> Void = { _ in }) throws
        -> any DistillationMethod
    {
        var settings = SettingValues()
        settings[SharedSettings.stages] = stages
        configure(&settings)
        let context = MethodContext(
            settings: settings, studentTaps: vitTaps, teacherTaps: resnetTaps, classes: 4, seed: 1,
            labelSmoothing: 0.1, stepsPerEpoch: 10, totalSteps: 10)
        return try MethodRegistry.make(name, context: context)
    }

    func testEveryMethodGivesAFiniteLossAndGradientsToStudentAndHelpers() throws {
        let teacher = try ModelRegistry.make("resnet8", inputShape: [3, 8, 8], classes: 4, seed: 1)
        teacher.eval()
        teacher.freeze()
        let student = try ModelRegistry.make("vit-tiny", inputShape: [3, 8, 8], classes: 4, seed: 2)
        let batch = Batch(
            images: randomTensor([4, 3, 8, 8], seed: 3, requiresGrad: false), labels: [0, 1, 2, 3],
            indices: [0, 1, 2, 3])
        for method in MethodRegistry.names {
            let objective = try self.method(method)
            let teacherOutput = withNoGrad { teacher.forward(batch.images) }
            let loss = objective.loss(
                student: student.forward(batch.images), teacher: teacherOutput, targets: Targets(labels: batch.labels),
                step: 0)
            XCTAssertTrue(loss.total.item.isFinite, "\(method)")
            XCTAssertNotNil(loss.terms["ce"])
            loss.total.backward()
            XCTAssertNotNil(student.namedParameters().first { $0.0 == "blocks.0.attn.qkv.weight" }?.1.grad, "\(method)")
            for (prefix, module) in objective.helpers {
                for (name, p) in module.namedParameters() where !name.hasPrefix("bn") {
                    XCTAssertNotNil(p.grad, "\(method): \(prefix).\(name) got no gradient")
                }
            }
            XCTAssertTrue(
                teacher.parameters().allSatisfy { $0.grad == nil }, "\(method): the frozen teacher received gradients")
            student.zeroGrad()
        }
    }

    /// SFKD logs raw<k>, the distance of the aligned student map from the teacher's before DS2S;
    /// lambda_raw adds it to the loss; gffl_on: student takes DS2S out of the frequency loss.
    func testSFKDRawDistanceAndFrequencyInput() throws {
        let teacher = try ModelRegistry.make("resnet8", inputShape: [3, 8, 8], classes: 4, seed: 1)
        teacher.eval()
        let student = try ModelRegistry.make("vit-tiny", inputShape: [3, 8, 8], classes: 4, seed: 2)
        let images = randomTensor([4, 3, 8, 8], seed: 3, requiresGrad: false)
        let (studentOutput, teacherOutput) = withNoGrad { (student.forward(images), teacher.forward(images)) }
        func spec(_ name: String) -> SettingSpec { SFKD.settings.first { $0.name == name }! }
        func loss(_ configure: (inout SettingValues) -> Void = { _ in }, perturbRefiner: Bool = false) throws
            -> ObjectiveLoss
        {
            let sfkd = try method("sfkd", configure: configure)
            if perturbRefiner {
                for (prefix, module) in sfkd.helpers where prefix.hasPrefix("ds2s") {
                    for p in module.parameters() { p.data[0] += 0.5 }
                }
            }
            return sfkd.loss(
                student: studentOutput, teacher: teacherOutput, targets: Targets(labels: [0, 1, 2, 3]), step: 0)
        }
        let plain = try loss()
        let raw = try XCTUnwrap(plain.terms["raw0"])
        XCTAssertGreaterThan(raw, 0)
        XCTAssertNotNil(plain.terms["raw1"])
        let weighted = try loss { $0.set(spec("lambda_raw"), to: .double(2)) }
        XCTAssertEqual(weighted.terms["raw0"]!, raw, accuracy: 1e-6)
        XCTAssertEqual(
            weighted.total.item - plain.total.item, 2 * (raw + plain.terms["raw1"]!), accuracy: 1e-4)

        let onStudent: (inout SettingValues) -> Void = { $0.set(spec("gffl_on"), to: .string("student")) }
        let refined = try loss(), refinedPerturbed = try loss(perturbRefiner: true)
        XCTAssertNotEqual(refined.terms["frequency0"]!, refinedPerturbed.terms["frequency0"]!)
        let direct = try loss(onStudent), directPerturbed = try loss(onStudent, perturbRefiner: true)
        XCTAssertEqual(direct.terms["frequency0"]!, directPerturbed.terms["frequency0"]!)
        XCTAssertNotEqual(direct.terms["frequency0"]!, refined.terms["frequency0"]!)
    }

    func testBadStagesLevelsAndWidthsAreClearErrors() throws {
        XCTAssertThrowsError(try method("sfkd", stages: [3])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("--kd-stages 3 is out of range for the teacher, which has 3 taps"), text)
            XCTAssertTrue(text.contains("2: 64x2x2"), text)
        }
        XCTAssertThrowsError(try method("fitnet", stages: [-5])) { error in
            XCTAssertTrue("\(error)".contains("out of range for the student, which has 4 taps"), "\(error)")
        }
        let oneByOne: [(shape: [Int], layout: TapLayout)] = [([1, 8, 1, 1], .spatial)]
        var settings = SettingValues()
        settings[SharedSettings.stages] = [0]
        let context = MethodContext(
            settings: settings, studentTaps: oneByOne, teacherTaps: oneByOne, classes: 4, seed: 0,
            labelSmoothing: 0, stepsPerEpoch: 1, totalSteps: 1)
        XCTAssertThrowsError(try SFKD(context: context)) { error in
            XCTAssertTrue("\(error)".contains("a Haar level needs a grid larger than 1x1"), "\(error)")
        }
        XCTAssertThrowsError(
            try method("sfkd") { $0.set(SFKD.settings.first { $0.name == "ds2s_dim" }!, to: .int(12)) }
        ) { error in
            XCTAssertTrue("\(error)".contains("--ds2s-dim 12 must be a positive multiple of 8"), "\(error)")
        }
    }
}
