/// Counts the multiply-adds of the forward ops that dominate a step, for model FLOP
/// utilisation: matrix products, linear layers, convolutions (depthwise included) and the two
/// products of attention (QK^T and PV). Normalisation, elementwise ops, softmax, pooling, FFTs
/// and the optimizer are not counted, as papers count MFU. Off unless a benchmark turns it on
/// around one forward pass on one thread; the count is then read and reset.
public enum FLOPCounter {
    nonisolated(unsafe) private static var counting = false
    nonisolated(unsafe) private static var total = 0

    /// The multiply-adds of the counted ops `body` runs.
    public static func multiplyAdds(_ body: () throws -> Void) rethrows -> Int {
        total = 0
        counting = true
        defer { counting = false }
        try body()
        return total
    }

    @inline(__always)
    static func add(_ multiplyAdds: Int) {
        if counting { total += multiplyAdds }
    }
}
