import Settings

/// Stops a run whose loss explodes instead of letting it end "done" at chance accuracy: a loss
/// more than `factor` times its mean over the first steps (the first min(log_every, 10); the
/// first step's alone until those are in), or one that is not finite. The same global loss
/// reaches every rank, so all stop at the same step.
struct DivergenceGuard {
    /// 0: only a non-finite loss stops the run.
    let factor: Double
    let window: Int
    private var sum = 0.0, count = 0, first: Double?

    init(factor: Double, logEvery: Int) {
        self.factor = factor
        window = max(1, min(logEvery, 10))
    }

    /// The reference the loss is held to, once there is one.
    var baseline: Double? { count >= window ? sum / Double(count) : first }

    /// Records `loss`; returns why the run diverged, or nil.
    mutating func check(_ loss: Double) -> String? {
        guard loss.isFinite else { return "the loss is \(loss)" }
        if factor > 0, let baseline, baseline > 0, loss > factor * baseline {
            let over = count >= window ? "its mean over the first \(count) steps" : "the first step's"
            return "the loss \(format(loss)) is more than \(format(factor))x \(over) (\(format(baseline)))"
        }
        if first == nil { first = loss }
        if count < window {
            sum += loss
            count += 1
        }
        return nil
    }

    private func format(_ value: Double) -> String { String(format: "%.4g", value) }
}

extension TrainingConfig {
    /// The selected method's settings as "name value" (its loss weights and temperature).
    var methodSettingsText: String {
        let read = Set(((try? methodType)?.settings ?? []).map(\.name))
        let settings = Self.keys.filter { read.contains($0.spec.name) }.map { "\($0.spec.name) \($0.get(self).text)" }
        return settings.isEmpty ? "no loss weights" : settings.joined(separator: ", ")
    }
}
