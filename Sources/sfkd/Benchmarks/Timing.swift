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
func pairedMedianSeconds(repeats: Int, baseline: () -> Void, candidate: () -> Void) -> (
    baseline: Double, candidate: Double
) {
    withoutActuallyEscaping(baseline) { baseline in
        withoutActuallyEscaping(candidate) { candidate in
            let medians = alternatingMedianSeconds(repeats: repeats, [baseline, candidate])
            return (medians[0], medians[1])
        }
    }
}

/// Medians of several bodies timed in turn, round after round (one untimed warm-up round).
func alternatingMedianSeconds(repeats: Int, _ bodies: [() -> Void]) -> [Double] {
    for body in bodies { body() }
    var samples = [[Double]](repeating: [], count: bodies.count)
    for _ in 0..<repeats {
        for (index, body) in bodies.enumerated() {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            samples[index].append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
    }
    return samples.map { $0.sorted()[$0.count / 2] }
}
