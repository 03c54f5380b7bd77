import Models
import Settings

/// The optimizer settings a run takes when the user sets no optimizer: OFA's CIFAR-100 recipe
/// for the student's family (OFAKD's configs/cifar/cnn.yaml and vit_mlp.yaml). CNN students
/// train with SGD at 0.05, weight decay 2e-3 and a warm-up of 1% of the run; ViT and MLP students
/// with AdamW at 5e-4, weight decay 0.05, a warm-up of 1/15 of the run and gradients clipped to
/// norm 5 (OFA warms up 3 and 20 of 300 epochs). SGD at 0.05 on a ViT diverges under DKD's
/// large non-target weight; AdamW does not. Each setting the user gave is kept.
public struct StudentRecipe: Equatable, Sendable {
    public let family: String
    public let optimizer: OptimizerChoice
    public let learningRate: Double
    public let weightDecay: Double
    /// Warm-up as a share of the run.
    public let warmupShare: Double
    public let clipGradientNorm: Double?

    public static func forFamily(_ family: String) -> StudentRecipe {
        family == "cnn"
            ? StudentRecipe(
                family: family, optimizer: .sgd, learningRate: 0.05, weightDecay: 2e-3, warmupShare: 3.0 / 300,
                clipGradientNorm: nil)
            : StudentRecipe(
                family: family, optimizer: .adamw, learningRate: 5e-4, weightDecay: 0.05, warmupShare: 20.0 / 300,
                clipGradientNorm: 5)
    }
}

extension TrainingConfig {
    /// The recipe this config takes (nil when it sets its own optimizer).
    public var studentRecipe: StudentRecipe? {
        guard optimizer == nil else { return nil }
        return StudentRecipe.forFamily((try? ModelRegistry.entry(named: model))?.family ?? "cnn")
    }

    /// This config with the recipe's settings wherever the user gave none, for a run of
    /// `runEpochs` epochs (it may be a fraction).
    public func withStudentRecipe(runEpochs: Double) -> TrainingConfig {
        guard let recipe = studentRecipe else { return self }
        var config = self
        config.optimizer = recipe.optimizer
        config.learningRate = learningRate ?? recipe.learningRate
        config.weightDecay = weightDecay ?? recipe.weightDecay
        config.warmupEpochs = warmupEpochs ?? recipe.warmupShare * runEpochs
        config.clipGradientNorm = clipGradientNorm ?? recipe.clipGradientNorm
        return config
    }

    /// What the start-up line says about the optimizer: its settings and where they came from.
    func optimizerSummary(recipe: StudentRecipe?) -> String {
        var parts = [
            "\(resolvedOptimizer.rawValue) lr \(formatted(resolvedLearningRate))",
            "weight decay \(formatted(resolvedWeightDecay))",
        ]
        if let warmupEpochs, warmupEpochs > 0 { parts.append("warm-up \(formatted(warmupEpochs)) epochs") }
        if let clipGradientNorm { parts.append("gradients clipped to norm \(formatted(clipGradientNorm))") }
        let origin =
            recipe.map {
                " (OFA's recipe for \($0.family == "cnn" ? "CNN" : "ViT and MLP") students; --optimizer and the other flags set your own)"
            } ?? ""
        return parts.joined(separator: ", ") + origin
    }

    private func formatted(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e6 ? String(Int(value)) : String(format: "%.3g", value)
    }
}
