import Distill
import Tensors
import TestSupport
import Training
import XCTest

final class ConfigTests: XCTestCase {
    /// One key, one meaning: no method setting takes a training key's name.
    func testEveryKeyNameIsDeclaredOnce() {
        let names = TrainingConfig.keys.map(\.spec.name)
        XCTAssertEqual(Set(names).count, names.count, "\(names.sorted())")
        XCTAssertTrue(names.contains("lr") && names.contains("dwt_levels"))
    }

    func testYAMLAndOverrides() throws {
        var config = TrainingConfig()
        try config.apply(
            yaml: """
                model: vit-tiny
                epochs: 3
                lr: 5e-4
                optimizer: adamw
                flip: false
                clip_grad_norm: 1
                """, source: "test.yaml")
        XCTAssertEqual(config.model, "vit-tiny")
        XCTAssertEqual(config.epochs, 3)
        XCTAssertEqual(config.learningRate, 5e-4)
        XCTAssertEqual(config.horizontalFlip, false)
        XCTAssertEqual(config.clipGradientNorm, 1)
        try config.set("batch_size", to: "64", source: "flag --batch-size")
        XCTAssertEqual(config.batchSize, 64)
        // The saved YAML reads back to the same config.
        var reread = TrainingConfig()
        try reread.apply(yaml: try config.yaml(), source: "config.yaml")
        XCTAssertEqual(reread, config)
    }

    func testUnknownAndIllTypedKeysNameTheKey() {
        var config = TrainingConfig()
        XCTAssertThrowsError(try config.apply(yaml: "modle: resnet8\n", source: "config file a.yaml")) { error in
            XCTAssertTrue("\(error)".contains("config file a.yaml: unknown key 'modle'"), "\(error)")
            XCTAssertTrue("\(error)".contains("model"), "\(error)")
        }
        XCTAssertThrowsError(try config.apply(yaml: "epochs: many\n", source: "config file a.yaml")) { error in
            XCTAssertTrue("\(error)".contains("key 'epochs' expects an integer, found 'many'"), "\(error)")
        }
        XCTAssertThrowsError(try config.apply(yaml: "- just\n- a list\n", source: "config file b.yaml")) { error in
            XCTAssertTrue("\(error)".contains("expected a mapping"), "\(error)")
        }
        XCTAssertThrowsError(try config.set("optimizer", to: "adam", source: "flag --optimizer")) { error in
            XCTAssertTrue("\(error)".contains("key 'optimizer' expects one of sgd, adamw, found 'adam'"), "\(error)")
        }
    }
}

final class ConfigFileHardeningTests: XCTestCase {
    func testAnchorsAliasesAndOversizedFilesAreRefused() throws {
        // The "billion laughs": nine levels of aliases expand a few hundred bytes to 10^9 nodes.
        var bomb = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        for level in 1..<9 {
            bomb +=
                "\(Character(UnicodeScalar(97 + level)!)): &\(Character(UnicodeScalar(97 + level)!)) ["
                + Array(repeating: "*\(Character(UnicodeScalar(96 + level)!))", count: 9).joined(separator: ",") + "]\n"
        }
        var config = TrainingConfig()
        XCTAssertThrowsError(try config.apply(yaml: bomb, source: "config file bomb.yaml")) { error in
            XCTAssertTrue(
                "\(error)".contains(
                    "config file bomb.yaml: line 1 uses the YAML anchor '&a'; config files may not use anchors or aliases"
                ), "\(error)")
        }
        XCTAssertThrowsError(try config.apply(yaml: "model: resnet8\nseed: *s\n", source: "x.yaml")) { error in
            XCTAssertTrue("\(error)".contains("line 2 uses the YAML alias '*s'"), "\(error)")
        }
        // Quoted text and comments are not anchors.
        XCTAssertNoThrow(try config.apply(yaml: "out: 'runs/*a &b'  # &c *d\n", source: "ok.yaml"))
        let folder = try temporaryFolder(self)
        try Data(repeating: UInt8(ascii: "#"), count: 2 << 20).write(to: URL(fileURLWithPath: folder + "/big.yaml"))
        XCTAssertThrowsError(try config.apply(yamlFile: folder + "/big.yaml")) { error in
            XCTAssertTrue(
                "\(error)".contains("big.yaml is 2097152 bytes; a config file may be at most 1048576 bytes"), "\(error)"
            )
        }
    }

    func testNumbersOutsideTheirRangeAndNaNAreRefused() {
        var config = TrainingConfig()
        for (key, value, message) in [
            ("warmup_epochs", "nan", "'warmup_epochs' must be in [0, 1000000], found nan"),
            ("momentum", "-3", "'momentum' must be in [0, 1), found -3.0"),
            ("lr", "inf", "'lr' must be in (0, 100], found inf"),
            ("crop_padding", "1000000000", "'crop_padding' must be in [0, 64]"),
            ("epochs", "0", "'epochs' must be in [1, 1000000], found 0"),
        ] {
            XCTAssertThrowsError(try config.set(key, to: value, source: "flag"), key) { error in
                XCTAssertTrue("\(error)".contains(message), "\(key): \(error)")
            }
        }
        // Set in code, a bad value is caught by validate().
        config.model = "resnet8"
        config.momentum = .nan
        XCTAssertThrowsError(try config.validate()) { error in
            XCTAssertTrue("\(error)".contains("'momentum' must be in [0, 1), found nan"), "\(error)")
        }
    }
}

final class RecipeTests: XCTestCase {
    /// A grid of a million runs is refused before anything is planned, with the count and how
    /// to raise the cap.
    func testASweepGridPastTheCapIsRefusedWithItsSize() throws {
        let folder = try temporaryFolder(self)
        let values = (1...1000).map { "0.\($0)" }.joined(separator: ", ")
        let file = folder + "/huge.yaml"
        try "base: {model: resnet8, dataset: synthetic}\ngrid:\n  lr: [\(values)]\n  momentum: [\(values)]\n"
            .write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try SweepPlan(file: file, output: folder + "/out")) {
            XCTAssertTrue("\($0)".contains("the grid makes 1000000 runs (lr 1000 x momentum 1000 x seeds 1)"), "\($0)")
            XCTAssertTrue("\($0)".contains("--max-runs N"), "\($0)")
        }
        let small = folder + "/small.yaml"
        try "base: {model: resnet8, dataset: synthetic}\ngrid:\n  lr: [0.1, 0.2, 0.3]\nseeds: [0, 1]\n".write(
            toFile: small, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try SweepPlan(file: small, output: folder + "/out", maximumRuns: 5))
        XCTAssertEqual(try SweepPlan(file: small, output: folder + "/out", maximumRuns: 6).runs.count, 6)
    }

    func testEveryRecipeParsesAndValidates() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let folder = root.appendingPathComponent("launch/recipes").path
        let recipes = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".yaml") }
        XCTAssertGreaterThanOrEqual(recipes.count, 8)
        // The sweep files: every run's settings valid, the grid as large as it says.
        let sweeps = [
            "compare-methods.yaml": 36, "ablate-sfkd.yaml": 18, "bf16-accuracy.yaml": 8, "sfkd-vs-fitnet.yaml": 18,
        ]
        for (recipe, runs) in sweeps {
            let plan = try SweepPlan(file: folder + "/" + recipe, output: "/tmp/unused")
            XCTAssertEqual(plan.runs.count, runs, recipe)
            XCTAssertEqual(plan.prepare.map(\.name), ["teacher"], recipe)
            XCTAssertEqual(plan.prepare[0].config.valSeed, 0, recipe)
            XCTAssertTrue(
                plan.runs.allSatisfy {
                    $0.config.valSplit == 5000 && $0.config.valSeed == 0
                        && $0.config.teacher == "/tmp/unused/prepare/teacher/model.safetensors"
                }, recipe)
        }
        for recipe in recipes where sweeps[recipe] == nil {
            var config = TrainingConfig()
            try config.apply(yamlFile: folder + "/" + recipe)
            XCTAssertNoThrow(try config.validate(), recipe)
            if recipe.hasPrefix("distill-") {
                XCTAssertNotEqual(config.method, "none", recipe)
                XCTAssertEqual(config.distillation[SharedSettings.stages], [-2, -1], recipe)
            }
        }
    }
}
