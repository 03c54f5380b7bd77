import CMPI
import Foundation
import Tensors

/// DDP's `bf16_compress_hook` (Horovod's `Compression.fp16` in bfloat16): each bucket is
/// rounded to bfloat16 (to nearest, ties to even), allreduced as 16-bit words with a
/// user-defined MPI operation that adds two bfloat16 values in float32 and rounds the sum
/// back, then widened to float32 and divided by the number of ranks. Half the bytes on the
/// wire; every combine rounds, so the average differs from float32's by about 2^-8 relative.
/// Each pairwise combine is commutative bit for bit, so every rank receives the same result
/// whatever algorithm Open MPI picks (ring or recursive doubling).
public final class BF16Compression: CommunicationHook {
    private var words: [UInt16] = []
    /// Created once per hook and never freed: freeing it after MPI_Finalize would be an error.
    private let operation: MPI_Op

    public init() throws {
        var op: MPI_Op? = cmpi_op_sum()
        try Communicator.check(
            MPI_Op_create(
                { input, inout_, length, _ in
                    guard let input, let inout_, let length else { return }
                    let a = input.assumingMemoryBound(to: UInt16.self), b = inout_.assumingMemoryBound(to: UInt16.self)
                    for i in 0..<Int(length.pointee) {
                        b[i] = BFloat16.word(BFloat16.float(a[i]) + BFloat16.float(b[i]))
                    }
                }, 1, &op), "MPI_Op_create(bfloat16 sum)")
        guard let op else {
            throw CommunicatorError(
                operation: "MPI_Op_create(bfloat16 sum)", code: -1, message: "no operation returned")
        }
        operation = op
    }

    public func reduce(
        _ values: UnsafeMutableBufferPointer<Float>, bucket: GradientSync.Bucket, communicator: Communicator,
        context: String
    ) throws {
        guard communicator.size > 1, !values.isEmpty else { return }
        if words.count < values.count { words = [UInt16](repeating: 0, count: values.count) }
        let count = values.count
        try words.withUnsafeMutableBufferPointer { words in
            for i in 0..<count { words[i] = BFloat16.word(values[i]) }
            try communicator.allreduceWords(words.baseAddress!, count: count, operation: operation, context: context)
            let scale = 1 / Float(communicator.size)
            for i in 0..<count { values[i] = BFloat16.float(words[i]) * scale }
        }
    }
}
