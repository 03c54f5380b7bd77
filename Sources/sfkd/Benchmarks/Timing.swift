import Foundation

/// Median wall time in seconds of `repeats` runs of `body`, after one untimed warm-up run.
func medianSeconds(repeats: Int, _ body: () -> Void) -> Double {
    body()
    var samples: [Double] = []
    for _ in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
    }
    samples.sort()
    return samples[samples.count / 2]
}

func formatted(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }

/// Medians of a baseline and a candidate timed alternately, run after run, so that both see
/// the same machine state on a shared, noisy host; compare them as a ratio.
func pairedMedianSeconds(repeats: Int, baseline: () -> Void, candidate: () -> Void) -> (baseline: Double, candidate: Double) {
    baseline()
    candidate()
    var first: [Double] = [], second: [Double] = []
    for _ in 0..<repeats {
        var start = DispatchTime.now().uptimeNanoseconds
        baseline()
        first.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        start = DispatchTime.now().uptimeNanoseconds
        candidate()
        second.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
    }
    first.sort()
    second.sort()
    return (first[first.count / 2], second[second.count / 2])
}
