import Cluster
import Foundation
import Tensors

/// `sfkd bench allreduce`: bus bandwidth of an in-place float sum through the `Communicator`
/// and through a direct MPI_Allreduce, alternately in the same run, per message size. Each size
/// is verified first: every element must equal the sum of the ranks' values.
struct AllreduceBenchmark {
    let communicator: Communicator
    let sizesInBytes: [Int]
    let repeats: Int

    struct Row: Encodable {
        let bytes: Int
        let communicatorSeconds: Double, directSeconds: Double
        let communicatorBusGBPS: Double, directBusGBPS: Double, communicatorVersusDirect: Double

        enum CodingKeys: String, CodingKey {
            case bytes
            case communicatorSeconds = "communicator_seconds", directSeconds = "direct_seconds"
            case communicatorBusGBPS = "communicator_bus_gbps", directBusGBPS = "direct_bus_gbps", communicatorVersusDirect = "communicator_vs_direct"
        }
    }

    struct Result: Encodable {
        let worldSize: Int
        let verified: Bool
        let repeats: Int
        let sizes: [Row]
        enum CodingKeys: String, CodingKey { case worldSize = "world_size", verified, repeats, sizes }
    }

    func run() throws -> Result {
        var rows: [Row] = []
        var verified = true
        let ranks = communicator.size
        for bytes in sizesInBytes {
            let count = bytes / 4
            let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
            defer { buffer.deallocate() }
            // Verification: rank r contributes r + 1 + (i mod 7); the sum is known.
            for i in 0..<count { buffer[i] = Float(communicator.rank + 1 + i % 7) }
            try communicator.allreduce(buffer)
            let rankSum = Float(ranks * (ranks + 1) / 2)
            for i in stride(from: 0, to: count, by: max(1, count / 1000)) where buffer[i] != rankSum + Float(ranks * (i % 7)) {
                verified = false
            }
            var wrapper: [Double] = [], direct: [Double] = []
            try communicator.barrier()
            // The two in turns, each first every other round (the first one after a pause
            // absorbs the ranks' arrival skew).
            for round in 0..<repeats {
                for useWrapper in round % 2 == 0 ? [true, false] : [false, true] {
                    let start = DispatchTime.now().uptimeNanoseconds
                    if useWrapper {
                        try communicator.allreduce(buffer)
                    } else {
                        _ = communicator.directAllreduceSum(buffer.baseAddress!, count: count)
                    }
                    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
                    if useWrapper { wrapper.append(seconds) } else { direct.append(seconds) }
                }
            }
            // Every rank reports the slowest rank's median (the collective is as slow as that).
            var medians = [wrapper.sorted()[repeats / 2], direct.sorted()[repeats / 2]]
            try communicator.allreduce(&medians, .max)
            let busFactor = ranks > 1 ? 2 * Double(ranks - 1) / Double(ranks) : 1
            rows.append(Row(bytes: bytes, communicatorSeconds: medians[0], directSeconds: medians[1],
                            communicatorBusGBPS: Double(bytes) / medians[0] * busFactor * 1e-9,
                            directBusGBPS: Double(bytes) / medians[1] * busFactor * 1e-9,
                            communicatorVersusDirect: medians[1] / medians[0]))
        }
        return Result(worldSize: ranks, verified: verified, repeats: repeats, sizes: rows)
    }
}
