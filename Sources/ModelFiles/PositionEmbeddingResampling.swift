import Data
import Models
import Tensors

/// Absolute position embeddings for another patch grid, as timm's `resample_abs_pos_embed`
/// does when weights meet another input size: the prefix (class) tokens kept, the grid tokens
/// resized with PyTorch's antialiased bicubic interpolation (`F.interpolate(mode='bicubic',
/// antialias=True, align_corners=False)`: Keys' cubic with a = -0.5, its support widened by the
/// scale when shrinking, weights normalised per output), one axis after the other.
enum PositionEmbeddingResampling {
    /// `saved` resampled to `model`'s position embedding when the two differ only in their patch
    /// grid (the saved grid assumed square, as timm assumes); nil when there is nothing to fit.
    static func fitted(_ saved: Tensor, to model: any ImageClassifier, inputShape: [Int]) -> Tensor? {
        guard saved.rank == 3, let target = model.stateDict().first(where: { $0.0 == "pos_embed" })?.1,
            target.shape != saved.shape, target.shape[2] == saved.shape[2],
            case let .tokens(prefix, h, w)? = ModelRegistry.describeTaps(model, inputShape: inputShape).first?.layout
        else { return nil }
        let side = Int(Double(saved.shape[1] - prefix).squareRoot().rounded())
        guard side * side == saved.shape[1] - prefix else { return nil }
        return resample(saved, prefixTokens: prefix, from: (side, side), to: (h, w))
    }

    /// `embedding` is (1, prefix + h*w, D) on an `from` grid; the result is (1, prefix + H*W, D).
    static func resample(_ embedding: Tensor, prefixTokens: Int, from: (Int, Int), to: (Int, Int)) -> Tensor {
        let width = embedding.shape[2]
        let out = Tensor(zeros: [1, prefixTokens + to.0 * to.1, width])
        for i in 0..<(prefixTokens * width) { out.data[i] = embedding.data[i] }
        // (h, w, D) grid -> (H, w, D) along rows, then (H, W, D) along columns.
        // PyTorch's antialiased bicubic uses the same kernel, support and normalisation as PIL's resize.
        func axis(_ input: Int, _ output: Int) -> [[(Int, Double)]] {
            Interpolation.bicubic.axisWeights(input: input, output: output).map { entry in
                entry.weights.enumerated().map { (entry.first + $0.offset, $0.element) }
            }
        }
        let rows = axis(from.0, to.0), columns = axis(from.1, to.1)
        var middle = [Double](repeating: 0, count: to.0 * from.1 * width)
        let source = embedding.data + prefixTokens * width
        for y in 0..<to.0 {
            for (k, weight) in rows[y] {
                for x in 0..<from.1 {
                    for d in 0..<width {
                        middle[(y * from.1 + x) * width + d] += weight * Double(source[(k * from.1 + x) * width + d])
                    }
                }
            }
        }
        let target = out.data + prefixTokens * width
        for y in 0..<to.0 {
            for x in 0..<to.1 {
                for d in 0..<width {
                    var sum = 0.0
                    for (k, weight) in columns[x] { sum += weight * middle[(y * from.1 + k) * width + d] }
                    target[(y * to.1 + x) * width + d] = Float(sum)
                }
            }
        }
        return out
    }
}
