import Cluster
import Foundation
import Tensors

/// `sfkd bench allreduce`: per message size, the time of an in-place float sum through the
/// `Communicator` and through a direct MPI_Allreduce, and of the Communicator's reduce-scatter
/// and all-gather, the four timed in turn in the same run. Each collective's result is checked
/// first (every element must equal the known sum or the right rank's block). The fit takes
/// the ring algorithms' costs (Thakur, Rabenseifner and Gropp 2005), n the message's bytes:
/// allreduce 2(p-1) alpha + 2 (p-1)/p n beta, reduce-scatter and all-gather (p-1) alpha +
/// (p-1)/p n beta, and solves for alpha (latency per message) and beta (seconds per byte) by
/// least squares over every size and collective, relative errors weighted alike.
struct AllreduceBenchmark {
    let communicator: Communicator
    let sizesInBytes: [Int]
    let repeats: Int
    var fitsModel = false

    struct Row: Encodable {
        let bytes: Int
        let communicatorSeconds: Double, directSeconds: Double, reduceScatterSeconds: Double, allgatherSeconds: Double
        let communicatorBusGBPS: Double, directBusGBPS: Double, communicatorVersusDirect: Double

        enum CodingKeys: String, CodingKey {
            case bytes
            case communicatorSeconds = "communicator_seconds", directSeconds = "direct_seconds"
            case reduceScatterSeconds = "reduce_scatter_seconds", allgatherSeconds = "allgather_seconds"
            case communicatorBusGBPS = "communicator_bus_gbps", directBusGBPS = "direct_bus_gbps",
                communicatorVersusDirect = "communicator_vs_direct"
        }
    }

    struct Fit: Encodable {
        /// Seconds per message, seconds per byte, and the fit's median relative error.
        let alpha: Double, beta: Double, medianRelativeError: Double
        enum CodingKeys: String, CodingKey {
            case alpha = "alpha_seconds", beta = "beta_seconds_per_byte", medianRelativeError = "median_relative_error"
        }
    }

    struct Result: Encodable {
        let worldSize: Int
        let verified: Bool
        let repeats: Int
        let sizes: [Row]
        let fit: Fit?
        enum CodingKeys: String, CodingKey { case worldSize = "world_size", verified, repeats, sizes, fit }
    }

    private enum Collective: CaseIterable { case communicator, direct, reduceScatter, allgather }

    func run() throws -> Result {
        var rows: [Row] = []
        var verified = true
        let ranks = communicator.size, rank = communicator.rank
        for bytes in sizesInBytes {
            // A whole number of blocks, one per rank.
            let block = max(1, bytes / 4 / ranks), count = block * ranks
            let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
            defer { buffer.deallocate() }
            // Verification: rank r contributes r + 1 + (i mod 7); the sum is known.
            func fill() { for i in 0..<count { buffer[i] = Float(rank + 1 + i % 7) } }
            let rankSum = Float(ranks * (ranks + 1) / 2)
            func expected(_ i: Int) -> Float { rankSum + Float(ranks * (i % 7)) }
            let probe = stride(from: 0, to: block, by: max(1, block / 1000))
            fill()
            try communicator.allreduce(buffer)
            for i in stride(from: 0, to: count, by: max(1, count / 1000)) where buffer[i] != expected(i) {
                verified = false
            }
            fill()
            try communicator.reduceScatter(buffer, block: block)
            for i in probe where buffer[i] != expected(rank * block + i) { verified = false }
            // All-gather: each rank's block holds its rank number; every block must arrive.
            for i in 0..<block { buffer[rank * block + i] = Float(rank) }
            try communicator.allgather(inPlace: buffer, block: block)
            for r in 0..<ranks where buffer[r * block] != Float(r) || buffer[r * block + block - 1] != Float(r) {
                verified = false
            }

            var times = [[Double]](repeating: [], count: Collective.allCases.count)
            try communicator.barrier()
            for round in 0..<repeats {
                // In turns, rotating which goes first (the first after a pause absorbs the ranks' skew).
                for offset in 0..<Collective.allCases.count {
                    let index = (round + offset) % Collective.allCases.count
                    let start = DispatchTime.now().uptimeNanoseconds
                    switch Collective.allCases[index] {
                    case .communicator: try communicator.allreduce(buffer)
                    case .direct: _ = communicator.directAllreduceSum(buffer.baseAddress!, count: count)
                    case .reduceScatter: try communicator.reduceScatter(buffer, block: block)
                    case .allgather: try communicator.allgather(inPlace: buffer, block: block)
                    }
                    times[index].append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
                }
            }
            // Every rank reports the slowest rank's median (the collective is as slow as that).
            var medians = times.map { $0.sorted()[repeats / 2] }
            try communicator.allreduce(&medians, .max)
            let busFactor = ranks > 1 ? 2 * Double(ranks - 1) / Double(ranks) : 1
            let actual = count * 4
            rows.append(
                Row(
                    bytes: actual, communicatorSeconds: medians[0], directSeconds: medians[1],
                    reduceScatterSeconds: medians[2], allgatherSeconds: medians[3],
                    communicatorBusGBPS: Double(actual) / medians[0] * busFactor * 1e-9,
                    directBusGBPS: Double(actual) / medians[1] * busFactor * 1e-9,
                    communicatorVersusDirect: medians[1] / medians[0]))
        }
        return Result(
            worldSize: ranks, verified: verified, repeats: repeats, sizes: rows,
            fit: fitsModel && ranks > 1 ? Self.fit(rows, ranks: ranks) : nil)
    }

    /// Least squares for (alpha, beta) in t = a alpha + b beta over every (size, collective),
    /// each equation divided by its t so small and large messages count alike.
    static func fit(_ rows: [Row], ranks: Int) -> Fit {
        let p = Double(ranks)
        var equations: [(a: Double, b: Double, t: Double)] = []
        for row in rows {
            let n = Double(row.bytes)
            equations.append((2 * (p - 1), 2 * (p - 1) / p * n, row.communicatorSeconds))
            equations.append(((p - 1), (p - 1) / p * n, row.reduceScatterSeconds))
            equations.append(((p - 1), (p - 1) / p * n, row.allgatherSeconds))
        }
        var aa = 0.0, ab = 0.0, bb = 0.0, at = 0.0, bt = 0.0
        for e in equations {
            let a = e.a / e.t, b = e.b / e.t
            aa += a * a
            ab += a * b
            bb += b * b
            at += a
            bt += b
        }
        let determinant = aa * bb - ab * ab
        let alpha = determinant != 0 ? (at * bb - bt * ab) / determinant : 0
        let beta = determinant != 0 ? (bt * aa - at * ab) / determinant : 0
        let errors = equations.map { Swift.abs($0.a * alpha + $0.b * beta - $0.t) / $0.t }.sorted()
        return Fit(alpha: alpha, beta: beta, medianRelativeError: errors[errors.count / 2])
    }
}
