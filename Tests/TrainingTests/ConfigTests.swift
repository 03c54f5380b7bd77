import Distill
import Tensors
import Training
import XCTest

final class ConfigTests: XCTestCase {
    func testYAMLAndOverrides() throws {
        var config = TrainingConfig()
        try config.apply(yaml: """
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

final class RecipeTests: XCTestCase {
    func testEveryRecipeParsesAndValidates() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let folder = root.appendingPathComponent("launch/recipes").path
        let recipes = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".yaml") }
        XCTAssertGreaterThanOrEqual(recipes.count, 8)
        for recipe in recipes {
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
