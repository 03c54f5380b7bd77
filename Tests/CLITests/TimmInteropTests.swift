import Foundation
import ModelFiles
import Models
import Tensors
import TestSupport
import Training
import XCTest

/// timm models imported with `sfkd import`, against what timm itself computed
/// (`launch/interop/make-timm-fixtures` wrote the fixtures; CI needs no torch).
final class TimmInteropTests: XCTestCase {
    let fixtures = packageRoot.appendingPathComponent("Tests/Fixtures/timm").path
    let families = [
        "resnet18", "resnet50", "convnext_tiny", "mobilenetv2_100", "mixer_b16_224", "resmlp_12_224",
        "deit_tiny_patch16_224", "swin_tiny_patch4_window7_224",
    ]

    func expected(_ family: String) throws -> SafeTensors.Contents {
        try SafeTensors.read("\(fixtures)/\(family).expected.safetensors")
    }

    /// `sfkd import` of a family's fixture weights into `output`.
    func importFixture(_ family: String, weights: String? = nil, to output: String, extra: [String] = []) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let meta = try expected(family).metadata
        return try runSFKD(
            [
                "import", weights ?? "\(fixtures)/\(family).weights.safetensors", "--model", family, "--model-args",
                meta["model_args"]!,
                "--input", meta["input_shape"]!, "--dataset", "fixture", "--out", output,
            ] + extra)
    }

    /// Runs `body` in Python with the fixture generator loaded as `fixtures` (its FAMILIES and
    /// `create`) and safetensors' `load_file`; skips the test where torch or timm is missing.
    func runPython(withFixtureGenerator body: String, skipping reason: String) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let preamble = """
            import importlib.machinery, importlib.util
            from safetensors.torch import load_file
            loader = importlib.machinery.SourceFileLoader('fixtures', '\(packageRoot.path)/launch/interop/make-timm-fixtures')
            spec = importlib.util.spec_from_loader('fixtures', loader)
            fixtures = importlib.util.module_from_spec(spec)
            loader.exec_module(fixtures)

            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", preamble + body]
        let result = try runBounded(process, timeout: 300)
        if result.stderr.contains("No module named") { throw XCTSkip(reason) }
        return result
    }

    func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
        XCTAssertEqual(a.shape, b.shape)
        var worst = 0.0, scale = 1e-6
        for i in 0..<min(a.count, b.count) {
            worst = max(worst, Double(Swift.abs(a.data[i] - b.data[i])))
            scale = max(scale, Double(Swift.abs(b.data[i])))
        }
        return worst / scale
    }

    func testImportedModelsGiveTimmsLogitsAndTapsAndRoundTripBitForBit() throws {
        let folder = try temporaryFolder(self)
        for family in families {
            let reference = try expected(family)
            let imported = try importFixture(family, to: "\(folder)/\(family).safetensors")
            XCTAssertEqual(imported.status, 0, imported.stderr)
            let (model, description, _) = try ModelFile.open("\(folder)/\(family).safetensors")
            XCTAssertEqual(
                description.classes, Int(reference.metadata["classes"]!), "\(family): class count read from fc.weight")
            XCTAssertEqual(model.parameterCount, Int(reference.metadata["parameters"]!), family)
            model.eval()
            let output = withNoGrad { model.forward(reference.tensors["input"]!) }
            XCTAssertLessThan(relativeError(output.logits, reference.tensors["logits"]!), 1e-4, "\(family): logits")
            for (i, tap) in output.taps.enumerated() {
                XCTAssertLessThan(relativeError(tap.tensor, reference.tensors["tap\(i)"]!), 1e-4, "\(family): tap \(i)")
            }
            // sfkd's file is itself a state dict: importing it again gives the same tensors, bit for bit.
            let again = try importFixture(
                family, weights: "\(folder)/\(family).safetensors", to: "\(folder)/\(family)-again.safetensors")
            XCTAssertEqual(again.status, 0, again.stderr)
            let first = try SafeTensors.read("\(folder)/\(family).safetensors"),
                second = try SafeTensors.read("\(folder)/\(family)-again.safetensors")
            XCTAssertEqual(first.names, second.names)
            for name in first.names {
                XCTAssertEqual(first.tensors[name]!.array, second.tensors[name]!.array, "\(family): \(name)")
            }
        }
    }

    /// Weights for 32x32 inputs (an 8x8 patch grid) imported for 48x48: the position embedding
    /// resampled as timm resamples it, and timm's logits at the new size.
    func testPositionEmbeddingsAreResampledAsTimmDoes() throws {
        let folder = try temporaryFolder(self)
        let family = "deit_tiny_patch16_224"
        let reference = try SafeTensors.read("\(fixtures)/\(family).resampled.safetensors")
        let arguments = "depth=4 embed_dim=32 num_heads=2 patch_size=4"
        let result = try runSFKD([
            "import", "\(fixtures)/\(family).weights.safetensors", "--model", family, "--model-args", arguments,
            "--input", reference.metadata["input_shape"]!, "--out", "\(folder)/resampled.safetensors",
        ])
        XCTAssertEqual(result.status, 0, result.stderr)
        let (model, _, _) = try ModelFile.open("\(folder)/resampled.safetensors")
        let positions = try XCTUnwrap(model.stateDict().first { $0.0 == "pos_embed" }?.1)
        XCTAssertLessThan(relativeError(positions, reference.tensors["pos_embed"]!), 1e-4, "pos_embed")
        model.eval()
        let logits = withNoGrad { model.forward(reference.tensors["input"]!).logits }
        XCTAssertLessThan(relativeError(logits, reference.tensors["logits"]!), 1e-4, "logits at 48x48")
    }

    /// Each family's weights rewritten in an older or the original repository's layout (the
    /// inverse of timm's `checkpoint_filter_fn`) import to the same model: the same logits.
    /// Where torch and timm are installed, timm's own filter reads those files too, so the
    /// layouts here are the ones timm converts.
    func testOlderCheckpointLayoutsAreConvertedAsTimmDoes() throws {
        let folder = try temporaryFolder(self)
        func renamed(_ family: String, _ rename: (String, Tensor) -> [(String, Tensor)]) throws -> String {
            let contents = try SafeTensors.read("\(fixtures)/\(family).weights.safetensors")
            let path = "\(folder)/\(family).old.safetensors"
            try SafeTensors.write(contents.names.flatMap { rename($0, contents.tensors[$0]!) }, to: path)
            return path
        }
        func replacing(_ name: String, _ pairs: [(String, String)]) -> String {
            pairs.reduce(name) { $0.replacingOccurrences(of: $1.0, with: $1.1) }
        }
        var old: [String: String] = [:]
        // Swin before timm 0.9: patch merging at the end of the previous stage, `head`, index buffers saved.
        old["swin_tiny_patch4_window7_224"] = try renamed("swin_tiny_patch4_window7_224") { name, tensor in
            var parts = name.split(separator: ".").map(String.init)
            if parts.count > 2, parts[0] == "layers", parts[2] == "downsample", let stage = Int(parts[1]) {
                parts[1] = String(stage - 1)
            }
            if parts.starts(with: ["head", "fc"]) { parts.remove(at: 1) }
            var out = [(parts.joined(separator: "."), tensor)]
            if name.hasSuffix("relative_position_bias_table") {
                out.append((name.replacingOccurrences(of: "bias_table", with: "index"), Tensor(zeros: [4, 4])))
            }
            return out
        }
        // facebookresearch/ConvNeXt.
        old["convnext_tiny"] = try renamed("convnext_tiny") { name, tensor in
            var parts = name.split(separator: ".").map(String.init)
            if parts[0] == "stem" { parts = ["downsample_layers", "0"] + parts[1...] }
            if parts.count > 3, parts[0] == "stages", parts[2] == "downsample" {
                parts = ["downsample_layers", parts[1]] + parts[3...]
            }
            if parts.count > 3, parts[0] == "stages", parts[2] == "blocks" { parts.remove(at: 2) }
            if parts.starts(with: ["head", "norm"]) { parts.remove(at: 0) }
            if parts.starts(with: ["head", "fc"]) { parts.remove(at: 1) }
            return [(replacing(parts.joined(separator: "."), [("conv_dw", "dwconv"), ("mlp.fc", "pwconv")]), tensor)]
        }
        // Early timm ViT: a linear patch embedding; a pre-logits layer.
        old["deit_tiny_patch16_224"] = try renamed("deit_tiny_patch16_224") { name, tensor in
            guard name == "patch_embed.proj.weight" else { return [(name, tensor)] }
            return [
                (name, tensor.reshape([tensor.shape[0], tensor.count / tensor.shape[0]])),
                ("pre_logits.fc.weight", Tensor(zeros: [2, 2])),
            ]
        }
        // facebookresearch/deit's ResMLP.
        old["resmlp_12_224"] = try renamed("resmlp_12_224") { name, tensor in
            let renamed = replacing(
                name,
                [("stem.", "patch_embed."), ("linear_tokens.", "attn."), ("mlp_channels.", "mlp."), (".ls", ".gamma_")])
            return [
                (
                    renamed,
                    renamed.hasSuffix(".alpha") || renamed.hasSuffix(".beta") ? tensor.reshape([tensor.count]) : tensor
                )
            ]
        }
        for (family, path) in old.sorted(by: { $0.key < $1.key }) {
            let reference = try expected(family)
            let imported = try importFixture(family, weights: path, to: "\(folder)/\(family).safetensors")
            XCTAssertEqual(imported.status, 0, "\(family): \(imported.stderr)")
            XCTAssertTrue(
                imported.stderr.contains(
                    "converted from an older checkpoint layout as timm's checkpoint_filter_fn does"), imported.stderr)
            let (model, _, _) = try ModelFile.open("\(folder)/\(family).safetensors")
            model.eval()
            let logits = withNoGrad { model.forward(reference.tensors["input"]!).logits }
            XCTAssertLessThan(relativeError(logits, reference.tensors["logits"]!), 1e-4, "\(family): logits")
        }
        // Today's layout passes through untouched: no conversion note.
        let current = try importFixture("convnext_tiny", to: "\(folder)/current.safetensors")
        XCTAssertFalse(current.stderr.contains("converted"), current.stderr)

        let result = try runPython(
            withFixtureGenerator: """
                import importlib
                modules = {'swin': 'swin_transformer', 'convnext': 'convnext', 'deit': 'vision_transformer', 'resmlp': 'mlp_mixer'}
                for name, timm_name, kwargs, _, classes, _ in fixtures.FAMILIES:
                    prefix = name.split('_')[0]
                    if prefix not in modules:
                        continue
                    model = fixtures.create(timm_name, classes, kwargs).eval()
                    filter_fn = importlib.import_module('timm.models.' + modules[prefix]).checkpoint_filter_fn
                    model.load_state_dict(filter_fn(load_file(f'\(folder)/{name}.old.safetensors'), model), strict=True)
                    print(name)
                """, skipping: "torch or timm is not installed; the layouts were not cross-checked with timm's filters")
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(Set(result.stdout.split(separator: "\n").map(String.init)), Set(old.keys), result.stdout)
    }

    func testFullSizeParameterCountsEqualTimms() throws {
        let counts = try XCTUnwrap(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/parameter-counts.json"))) as? [String: Any])
        let parameters = try XCTUnwrap(counts["parameters"] as? [String: Int])
        for (name, expected) in parameters {
            let model = try ModelRegistry.make(name, inputShape: [3, 224, 224], classes: 1000, seed: 0)
            XCTAssertEqual(model.parameterCount, expected, name)
        }
        // The normalisation `sfkd import` assumes is that of timm's default pretrained weights.
        let normalisation = try XCTUnwrap(counts["normalisation"] as? [String: [String: [Double]]])
        XCTAssertEqual(Set(normalisation.keys), Set(parameters.keys))
        for (name, statistics) in normalisation {
            let entry = try ModelRegistry.entry(named: name)
            XCTAssertEqual(
                entry.pretrainedMean.map(Double.init), statistics["mean"]!.map { Double(Float($0)) }, "\(name): mean")
            XCTAssertEqual(
                entry.pretrainedStd.map(Double.init), statistics["std"]!.map { Double(Float($0)) }, "\(name): std")
        }
    }

    func testBadWeightsAreClearErrors() throws {
        let folder = try temporaryFolder(self)
        let weights = "\(fixtures)/resnet18.weights.safetensors"
        // Truncated.
        try Data(contentsOf: URL(fileURLWithPath: weights)).dropLast(100).write(
            to: URL(fileURLWithPath: "\(folder)/cut.safetensors"))
        let cut = try importFixture("resnet18", weights: "\(folder)/cut.safetensors", to: "\(folder)/a.safetensors")
        XCTAssertNotEqual(cut.status, 0)
        XCTAssertTrue(cut.stderr.contains("cut.safetensors") && cut.stderr.contains("truncated"), cut.stderr)
        // A tensor under another name: listed as missing and unexpected.
        let contents = try SafeTensors.read(weights)
        try SafeTensors.write(
            contents.names.map {
                ($0 == "layer1.0.conv1.weight" ? "layer1.0.conv_one.weight" : $0, contents.tensors[$0]!)
            }, to: "\(folder)/renamed.safetensors")
        let renamed = try importFixture(
            "resnet18", weights: "\(folder)/renamed.safetensors", to: "\(folder)/b.safetensors")
        XCTAssertNotEqual(renamed.status, 0)
        XCTAssertTrue(
            renamed.stderr.contains("missing layer1.0.conv1.weight")
                && renamed.stderr.contains("unexpected layer1.0.conv_one.weight"), renamed.stderr)
        // Another class count than the head's.
        let classes = try importFixture("resnet18", to: "\(folder)/c.safetensors", extra: ["--classes", "7"])
        XCTAssertNotEqual(classes.status, 0)
        XCTAssertTrue(classes.stderr.contains("fc.weight: file [5, 64], model [7, 64]"), classes.stderr)
        // Other model arguments than the weights were made with.
        let shape = try runSFKD([
            "import", weights, "--model", "resnet18", "--input", "3,32,32", "--out", "\(folder)/d.safetensors",
        ])
        XCTAssertNotEqual(shape.status, 0)
        XCTAssertTrue(
            shape.stderr.contains("does not match the model")
                && shape.stderr.contains("layer1.0.conv1.weight: file [8, 64, 3, 3], model [64, 64, 3, 3]"),
            shape.stderr)
        // DistributedDataParallel's `module.` prefix is stripped.
        try SafeTensors.write(
            contents.names.map { ("module." + $0, contents.tensors[$0]!) }, to: "\(folder)/ddp.safetensors")
        let ddp = try importFixture("resnet18", weights: "\(folder)/ddp.safetensors", to: "\(folder)/e.safetensors")
        XCTAssertEqual(ddp.status, 0, ddp.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(folder)/a.safetensors"))
    }

    /// Every family's sfkd model file loads strictly into the timm model it came from and gives
    /// timm's logits (where torch and timm are installed; the generator builds the timm models).
    func testExportLoadsStrictlyIntoTimm() throws {
        let folder = try temporaryFolder(self)
        for family in families {
            let imported = try importFixture(family, to: "\(folder)/\(family).safetensors")
            XCTAssertEqual(imported.status, 0, imported.stderr)
        }
        let result = try runPython(
            withFixtureGenerator: """
                import torch
                for name, timm_name, kwargs, _, classes, _ in fixtures.FAMILIES:
                    model = fixtures.create(timm_name, classes, kwargs).eval()
                    model.load_state_dict(load_file(f'\(folder)/{name}.safetensors'), strict=True)
                    expected = load_file(f'\(fixtures)/{name}.expected.safetensors')
                    with torch.no_grad():
                        print(name, (model(expected['input']) - expected['logits']).abs().max().item())
                """, skipping: "torch or timm is not installed (pip install torch timm); skipping the cross-check")
        XCTAssertEqual(result.status, 0, result.stderr)
        let differences = Dictionary(
            uniqueKeysWithValues: result.stdout.split(separator: "\n").map { line -> (String, Double) in
                let parts = line.split(separator: " ")
                return (String(parts[0]), Double(parts.last ?? "") ?? 1)
            })
        XCTAssertEqual(Set(differences.keys), Set(families), result.stdout)
        for (family, difference) in differences { XCTAssertLessThan(difference, 1e-5, "\(family) in timm") }
    }
}
