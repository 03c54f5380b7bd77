import Foundation
import Layers
import Models
import Tensors
import TestSupport
import XCTest

final class ModelTests: XCTestCase {
    func testParameterCountsMatchThePyTorchModels() throws {
        XCTAssertEqual(
            try ModelRegistry.make("resnet8", inputShape: [3, 32, 32], classes: 10, seed: 0).parameterCount, 78_042)
        XCTAssertEqual(
            try ModelRegistry.make("resnet20", inputShape: [3, 32, 32], classes: 10, seed: 0).parameterCount, 272_474)
        XCTAssertEqual(
            try ModelRegistry.make("vit-tiny", inputShape: [3, 32, 32], classes: 10, seed: 0).parameterCount, 546_186)
    }

    func testPyTorchStyleNames() throws {
        let resnet = try ModelRegistry.make("resnet8", inputShape: [3, 32, 32], classes: 10, seed: 0)
        let names = resnet.namedParameters().map(\.0)
        XCTAssertTrue(names.contains("layer2.0.downsample.0.weight"))
        XCTAssertTrue(names.contains("layer1.0.bn2.bias"))
        XCTAssertEqual(names.last, "fc.bias")
        XCTAssertTrue(resnet.namedBuffers().map(\.0).contains("layer3.0.bn1.running_var"))
        let vit = try ModelRegistry.make("vit-tiny", inputShape: [3, 32, 32], classes: 10, seed: 0)
        let vitNames = Set(vit.namedParameters().map(\.0))
        for name in [
            "cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.3.attn.qkv.weight", "blocks.0.mlp.fc2.bias",
            "norm.weight", "head.weight",
        ] {
            XCTAssertTrue(vitNames.contains(name), name)
        }
        let mixer = try ModelRegistry.make("mixer-tiny", inputShape: [3, 32, 32], classes: 10, seed: 0)
        XCTAssertTrue(mixer.namedParameters().map(\.0).contains("blocks.2.mlp_tokens.fc1.weight"))
    }

    /// Reduced variants of the timm families (same code paths, a fraction of the arithmetic).
    func reducedArguments(_ name: String) throws -> ModelArguments {
        let entry = try ModelRegistry.entry(named: name)
        if entry.arguments.contains("channels") { return try ModelArguments("layers=1,1,1,1 channels=8,16,32,64") }
        if entry.arguments.contains("channel_multiplier") { return try ModelArguments("channel_multiplier=0.25") }
        if entry.arguments.contains("dims") { return try ModelArguments("depths=1,1,1,1 dims=8,16,32,64") }
        if entry.arguments.contains("window_size") {
            return try ModelArguments("patch_size=4 embed_dim=8 depths=2,2,2,2 num_heads=1,1,2,2 window_size=4")
        }
        if entry.arguments.contains("num_blocks") {
            return try ModelArguments("patch_size=4 embed_dim=16 num_blocks=2")
        }
        if entry.arguments.contains("patch_size") {
            return try ModelArguments("patch_size=4 embed_dim=32 depth=2 num_heads=2")
        }
        return ModelArguments()
    }

    func testEveryModelRunsForwardAndBackwardWithTaps() throws {
        for name in ModelRegistry.names {
            // ConvNeXt downsamples by 32: its grayscale case is 32x32 too.
            for shape in name == "convnext_tiny" ? [[3, 32, 32], [1, 32, 32]] : [[3, 32, 32], [1, 28, 28]] {
                let model = try ModelRegistry.make(
                    name, inputShape: shape, classes: 7, seed: 1, arguments: try reducedArguments(name))
                let output = model.forward(Tensor(repeating: 0.1, shape: [2] + shape))
                XCTAssertEqual(output.logits.shape, [2, 7], name)
                XCTAssertFalse(output.taps.isEmpty, name)
                for tap in output.taps {
                    let map = tap.spatialMap()
                    XCTAssertEqual(map.rank, 4, name)
                    XCTAssertEqual(map.shape[0], 2, name)
                }
                let loss = crossEntropy(output.logits, labels: [0, 6])
                loss.backward()
                XCTAssertTrue(loss.item.isFinite, name)
                for (parameterName, p) in model.namedParameters() {
                    XCTAssertNotNil(p.grad, "\(name): \(parameterName) got no gradient")
                }
            }
        }
    }

    /// Every trainable tensor and every module a model holds (found by reflection over its
    /// stored properties, independently of its hand-written `children` and `ownParameters`)
    /// is in what it reports: a child left out of `children` would go untrained and unsaved.
    func testListedChildrenCoverEveryParameterTheModelHolds() throws {
        func reflect(
            _ value: Any, tensors: inout [ObjectIdentifier: String], modules: inout [ObjectIdentifier: String],
            visited: inout Set<ObjectIdentifier>, path: String
        ) {
            if let tensor = value as? Tensor {
                if tensor.requiresGrad { tensors[ObjectIdentifier(tensor), default: path] = path }
                return
            }
            if let object = value as? AnyObject, type(of: value) is AnyClass {
                guard visited.insert(ObjectIdentifier(object)).inserted else { return }
                if value is any Module { modules[ObjectIdentifier(object), default: path] = path }
            }
            var mirror: Mirror? = Mirror(reflecting: value)
            while let current = mirror {
                for child in current.children {
                    reflect(
                        child.value, tensors: &tensors, modules: &modules, visited: &visited,
                        path: path + "." + (child.label ?? "?"))
                }
                mirror = current.superclassMirror
            }
        }
        for name in ModelRegistry.names {
            let model = try ModelRegistry.make(
                name, inputShape: [3, 32, 32], classes: 7, seed: 1, arguments: try reducedArguments(name))
            var tensors: [ObjectIdentifier: String] = [:], modules: [ObjectIdentifier: String] = [:],
                visited = Set<ObjectIdentifier>()
            reflect(model, tensors: &tensors, modules: &modules, visited: &visited, path: name)
            let listed = Set(model.parameters().map(ObjectIdentifier.init))
            var reachable = Set<ObjectIdentifier>()
            func walk(_ module: any Module) {
                reachable.insert(ObjectIdentifier(module))
                for (_, child) in module.children { walk(child) }
            }
            walk(model)
            XCTAssertGreaterThan(tensors.count, 0, name)
            for (id, path) in tensors where !listed.contains(id) {
                XCTFail("\(name): \(path) is trainable but not among the parameters")
            }
            for (id, path) in modules where !reachable.contains(id) {
                XCTFail("\(name): \(path) is a module not among the children")
            }
            XCTAssertEqual(model.parameterCount, model.parameters().reduce(0) { $0 + $1.count }, name)
        }
    }

    /// The parameter estimates that guard against models too large to build agree with timm's
    /// full-size counts (Tests/Fixtures/timm/parameter-counts.json) and with the built reduced
    /// variants; a model whose weights would not fit in memory is refused before allocation.
    func testParameterEstimatesMatchAndAModelTooLargeIsRefused() throws {
        let counts = try XCTUnwrap(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: packageRoot.appendingPathComponent("Tests/Fixtures/timm/parameter-counts.json")))
                as? [String: Any])
        let parameters = try XCTUnwrap(counts["parameters"] as? [String: Int])
        for (name, expected) in parameters {
            let estimate = try XCTUnwrap(ModelRegistry.entry(named: name).parameterEstimate, name)
            let value = try estimate([3, 224, 224], 1000, ModelArguments())
            XCTAssertEqual(value, Double(expected), accuracy: 0.02 * Double(expected), name)
        }
        for entry in ModelRegistry.entries {
            guard let estimate = entry.parameterEstimate else { continue }
            let arguments = try reducedArguments(entry.name)
            let built = try ModelRegistry.make(
                entry.name, inputShape: [3, 32, 32], classes: 7, seed: 1, arguments: arguments)
            let value = try estimate([3, 32, 32], 7, arguments)
            XCTAssertEqual(
                value, Double(built.parameterCount), accuracy: 0.25 * Double(built.parameterCount), entry.name)
        }
        XCTAssertThrowsError(
            try ModelRegistry.make(
                "vit_small_patch16_224", inputShape: [3, 224, 224], classes: 10, seed: 0,
                arguments: try ModelArguments("embed_dim=65536 num_heads=8"))
        ) {
            XCTAssertTrue(
                "\($0)".contains("model 'vit_small_patch16_224' with embed_dim=65536 num_heads=8 has about 618"),
                "\($0)")
            XCTAssertTrue("\($0)".contains("of float32 weights") && "\($0)".contains("of memory"), "\($0)")
        }
    }

    func testTapLayouts() throws {
        let resnet = try ModelRegistry.make("resnet20", inputShape: [3, 32, 32], classes: 10, seed: 0)
        let taps = ModelRegistry.describeTaps(resnet, inputShape: [3, 32, 32])
        XCTAssertEqual(taps.map(\.shape), [[1, 16, 32, 32], [1, 32, 16, 16], [1, 64, 8, 8]])
        let vit = try ModelRegistry.make("vit-tiny", inputShape: [1, 28, 28], classes: 10, seed: 0)
        let vitTaps = ModelRegistry.describeTaps(vit, inputShape: [1, 28, 28])
        XCTAssertEqual(vitTaps.count, 4)
        XCTAssertEqual(vitTaps.last?.shape, [1, 50, 128])
        XCTAssertEqual(vitTaps.last?.layout, .tokens(prefixTokens: 1, gridHeight: 7, gridWidth: 7))
        let vitSmall = try ModelRegistry.make("vit-small", inputShape: [3, 32, 32], classes: 10, seed: 0)
        XCTAssertEqual(ModelRegistry.describeTaps(vitSmall, inputShape: [3, 32, 32]).count, 4)
    }

    func testTokenTapToSpatialMapDropsTheClassToken() {
        // Tokens (1, 1 + 4, 2): class token then a 2x2 grid.
        let tokens = Tensor([9, 9, 0, 10, 1, 11, 2, 12, 3, 13], shape: [1, 5, 2])
        let map = FeatureTap(tensor: tokens, layout: .tokens(prefixTokens: 1, gridHeight: 2, gridWidth: 2)).spatialMap()
        XCTAssertEqual(map.shape, [1, 2, 2, 2])
        XCTAssertEqual(map.array, [0, 1, 2, 3, 10, 11, 12, 13])
    }

    func testBadModelRequestsAreClearErrors() {
        XCTAssertThrowsError(try ModelRegistry.make("resnet9", inputShape: [3, 32, 32], classes: 10, seed: 0)) {
            error in
            XCTAssertTrue("\(error)".contains("unknown model 'resnet9'"))
            XCTAssertTrue("\(error)".contains("vit-tiny"))
        }
        XCTAssertThrowsError(try ModelRegistry.make("vit-tiny", inputShape: [3, 30, 30], classes: 10, seed: 0)) {
            error in
            XCTAssertTrue("\(error)".contains("divisible by its patch size 4"), "\(error)")
        }
        // Malformed lists name the argument and the item, never read as something else.
        for (text, message) in [
            ("depths=1,,1,1", "item 2 is empty"), ("depths=1,1,1,", "item 4 is empty"),
            ("depths=1,x,1,1", "item 2 'x' is not an integer"),
            ("depths=1,1,1", "3 items"),
        ] {
            XCTAssertThrowsError(
                try ModelRegistry.make(
                    "convnext_tiny", inputShape: [3, 32, 32], classes: 10, seed: 0, arguments: try ModelArguments(text))
            ) {
                XCTAssertTrue(
                    "\($0)".contains("model argument 'depths' is '\(text.dropFirst(7))': \(message)"), "\($0)")
            }
        }
    }
}

/// Stochastic depth (`drop_path_rate`): per-sample drops in training, the identity in eval.
final class DropPathTests: XCTestCase {
    func testDropPathDropsWholeSamplesAndScalesTheRest() {
        GlobalRandom.seed(3)
        let x = Tensor(repeating: 1, shape: [64, 2, 3])
        let y = withNoGrad { dropPath(x, probability: 0.25, training: true) }
        var dropped = 0
        for sample in 0..<64 {
            let values = (0..<6).map { y.data[sample * 6 + $0] }
            XCTAssertTrue(
                values.allSatisfy { $0 == 0 } || values.allSatisfy { abs($0 - 1 / 0.75) < 1e-6 },
                "sample \(sample): \(values)")
            if values[0] == 0 { dropped += 1 }
        }
        XCTAssertTrue((4...32).contains(dropped), "\(dropped) of 64 dropped at p = 0.25")
        XCTAssertEqual(withNoGrad { dropPath(x, probability: 0.25, training: false) }.array, x.array)
        // The backward is the same mask: checked with the generator reset for each evaluation.
        let input = randomTensor([5, 3, 2, 2], seed: 4)
        checkGradients([input]) {
            GlobalRandom.seed(9)
            return dropPath(input, probability: 0.4, training: true)
        }
    }

    func testModelsWithStochasticDepthAreTheSameModelInEval() throws {
        for (name, arguments) in [
            ("resnet18", "layers=1,1,1,1 channels=8,16,32,64 stem=cifar"),
            ("deit_tiny_patch16_224", "patch_size=4 embed_dim=32 depth=3 num_heads=2"),
            ("swin_tiny_patch4_window7_224", "patch_size=2 embed_dim=8 depths=2,2 num_heads=1,2 window_size=4"),
        ] {
            let plain = try ModelRegistry.make(
                name, inputShape: [3, 16, 16], classes: 4, seed: 1, arguments: try ModelArguments(arguments))
            let dropping = try ModelRegistry.make(
                name, inputShape: [3, 16, 16], classes: 4, seed: 1,
                arguments: try ModelArguments(arguments + " drop_path_rate=0.5"))
            // timm starts each block's last BN at zero weight, which would make dropping a branch a no-op.
            for model in [plain, dropping] {
                for (parameter, p) in model.namedParameters()
                where parameter.hasSuffix("bn2.weight") || parameter.hasSuffix("bn3.weight") { p.fill(1) }
            }
            let x = randomTensor([6, 3, 16, 16], seed: 2, requiresGrad: false)
            plain.eval()
            dropping.eval()
            XCTAssertEqual(
                withNoGrad { dropping.forward(x).logits }.array, withNoGrad { plain.forward(x).logits }.array, name)
            plain.train()
            dropping.train()
            GlobalRandom.seed(5)
            XCTAssertNotEqual(
                withNoGrad { dropping.forward(x).logits }.array, withNoGrad { plain.forward(x).logits }.array,
                "\(name): no sample was dropped in training")
        }
        XCTAssertThrowsError(
            try ModelRegistry.make(
                "resnet18", inputShape: [3, 16, 16], classes: 4, seed: 1,
                arguments: try ModelArguments("drop_path_rate=1.5"))
        ) { error in
            XCTAssertTrue("\(error)".contains("'drop_path_rate' is '1.5'; expected a number in [0, 1)"), "\(error)")
        }
    }
}
