import Foundation
import Settings
import Tensors

/// Keeps data-parallel replicas identical: a signature check of the model against rank 0, and
/// broadcasts of tensors from rank 0.
public enum ReplicaSync {
    /// Checks that every rank holds tensors of the same names and shapes, in the same order, as
    /// rank 0. Every rank learns of a mismatch, so all stop together; the error names the first
    /// differing tensor on each rank that differs.
    public static func checkSignature(_ tensors: [(String, [Int])], communicator: Communicator, what: String = "model")
        throws
    {
        try checkAgreement(tensors.map { "\($0.0) \($0.1)" }, communicator: communicator, what: what, item: "tensor")
    }

    /// Checks that every rank holds the same lines, in the same order, as rank 0 (a model's
    /// tensors, a resolved configuration); the error names the first differing `item` on both sides.
    public static func checkAgreement(_ lines: [String], communicator: Communicator, what: String, item: String) throws
    {
        guard communicator.size > 1 else { return }
        let text = Array(lines.joined(separator: "\n").utf8)
        var length = [text.count]
        try communicator.broadcast(&length, root: 0, context: "\(what) signature length")
        var rootText = communicator.rank == 0 ? text : [UInt8](repeating: 0, count: length[0])
        try communicator.broadcast(&rootText, root: 0, context: "\(what) signature")
        let rootLines = String(decoding: rootText, as: UTF8.self).split(
            separator: "\n", omittingEmptySubsequences: false
        ).map(String.init)
        // Index of the first differing line on this rank, or -1.
        var firstDifference = -1
        for i in 0..<max(lines.count, rootLines.count)
        where (i < lines.count ? lines[i] : nil) != (i < rootLines.count ? rootLines[i] : nil) {
            firstDifference = i
            break
        }
        if lines.isEmpty && rootText.isEmpty { firstDifference = -1 }  // both empty: "" splits into one empty line
        let differences = try communicator.allgather([firstDifference], context: "\(what) signature check")
        guard let first = differences.enumerated().filter({ $0.element >= 0 }).min(by: { $0.element < $1.element })
        else { return }
        // Every rank learns what the first differing rank has there, so whichever rank's message
        // reaches the terminal first (the job aborts on the first error) tells the whole story.
        let width = 240
        var mine = Array(
            (first.element < lines.count ? "'\(lines[first.element])'" : "nothing (\(lines.count) \(item)s)").utf8
                .prefix(width))
        mine += [UInt8](repeating: 0, count: width - mine.count)
        let all = try communicator.allgather(mine, context: "\(what) signature report")
        let theirs = String(
            decoding: all[(first.offset * width)..<((first.offset + 1) * width)].prefix { $0 != 0 }, as: UTF8.self)
        let rootHas =
            first.element < rootLines.count ? "'\(rootLines[first.element])'" : "nothing (\(rootLines.count) \(item)s)"
        let others = differences.enumerated().filter { $0.element >= 0 && $0.offset != first.offset }.map {
            "rank \($0.offset) at \(item) \($0.element)"
        }
        throw UserError(
            "the \(what) on rank \(first.offset) differs from rank 0's at \(item) \(first.element): rank 0 has \(rootHas), rank \(first.offset) has \(theirs)"
                + (others.isEmpty ? "" : "; also \(others.joined(separator: ", "))")
                + "; every rank must run the same model and configuration")
    }

    /// Overwrites `tensors` on every rank with rank 0's values, one broadcast per ~4 MiB.
    public static func broadcast(_ tensors: [Tensor], communicator: Communicator, context: String) throws {
        guard communicator.size > 1 else { return }
        let total = tensors.reduce(0) { $0 + $1.count }
        let chunk = 1 << 20
        var packed = [Float](repeating: 0, count: min(total, chunk))
        var index = 0, offset = 0
        // Pack consecutive tensors into one buffer; large tensors go in several pieces.
        while index < tensors.count {
            var filled = 0
            var pieces: [(Tensor, Int, Int, Int)] = []  // tensor, its offset, count, buffer position
            while index < tensors.count && filled < packed.count {
                let tensor = tensors[index]
                let count = min(tensor.count - offset, packed.count - filled)
                if communicator.rank == 0 {
                    for i in 0..<count { packed[filled + i] = tensor.data[offset + i] }
                }
                pieces.append((tensor, offset, count, filled))
                filled += count
                offset += count
                if offset == tensor.count {
                    index += 1
                    offset = 0
                }
            }
            try packed.withUnsafeMutableBufferPointer { buffer in
                try communicator.broadcast(
                    UnsafeMutableBufferPointer(rebasing: buffer[0..<filled]), root: 0, context: context)
            }
            if communicator.rank != 0 {
                for (tensor, start, count, position) in pieces {
                    for i in 0..<count { tensor.data[start + i] = packed[position + i] }
                }
            }
        }
    }
}
