import Models
import Settings
import Tensors

/// Which student tap is distilled towards which teacher tap: `kd_stages` resolved against both
/// models (negative indices count from the end). Errors list the taps the models offer.
public func resolveStagePairs(_ stages: [Int], student: [TapShape], teacher: [TapShape], method: String) throws -> [(
    student: Int, teacher: Int
)] {
    guard !stages.isEmpty else { throw UserError("--kd-stages is empty; \(method) needs at least one stage") }
    func resolve(_ index: Int, _ taps: [TapShape], _ who: String) throws -> Int {
        let resolved = index < 0 ? index + taps.count : index
        guard resolved >= 0 && resolved < taps.count else {
            let listing = taps.enumerated().map { "\($0.offset): \(describe($0.element))" }.joined(separator: "; ")
            throw UserError(
                "--kd-stages \(index) is out of range for the \(who), which has \(taps.count) taps (\(listing)); use 0..<\(taps.count) or -\(taps.count)..<0"
            )
        }
        return resolved
    }
    return try stages.map { (try resolve($0, student, "student"), try resolve($0, teacher, "teacher")) }
}

/// The distinct teacher taps of `pairs`, in tap order.
func teacherTaps(of pairs: [(student: Int, teacher: Int)]) -> [Int] { Array(Set(pairs.map(\.teacher))).sorted() }

/// (C, H, W) of a tap for one image: feature maps as they are, tokens on their grid.
func spatialShape(_ tap: TapShape) -> [Int] {
    switch tap.layout {
    case .spatial: return Array(tap.shape.dropFirst())
    case let .tokens(_, h, w): return [tap.shape[2], h, w]
    }
}

func describe(_ tap: TapShape) -> String {
    let shape = spatialShape(tap)
    switch tap.layout {
    case .spatial: return "\(shape[0])x\(shape[1])x\(shape[2])"
    case .tokens: return "\(shape[0])x\(shape[1])x\(shape[2]) from tokens"
    }
}
