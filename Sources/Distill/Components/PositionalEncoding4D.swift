import Foundation
import Tensors

/// The fixed 4-D positional code of a wavelet token: the width d is split in four chunks of
/// m = d/4, one per coordinate (level, orientation, row, column), each holding the standard
/// sinusoidal code pe[2i] = sin(p / 10000^(2i/m)), pe[2i+1] = cos(p / 10000^(2i/m)).
public enum PositionalEncoding4D {
    /// Orientation codes: LL 0, LH 1, HL 2, HH 3.
    public enum Orientation: Int, Sendable { case ll = 0, lh, hl, hh }

    /// (rows * columns, d) codes of one band, row-major.
    public static func codes(width d: Int, level: Int, orientation: Orientation, rows: Int, columns: Int) -> [Float] {
        ensure(d % 8 == 0, "PositionalEncoding4D: width \(d) must be a multiple of 8")
        let m = d / 4
        var codes = [Float](repeating: 0, count: rows * columns * d)
        for r in 0..<rows {
            for c in 0..<columns {
                let coordinates = [level, orientation.rawValue, r, c]
                let base = (r * columns + c) * d
                for (chunk, p) in coordinates.enumerated() {
                    for i in 0..<(m / 2) {
                        let angle = Double(p) / pow(10000, Double(2 * i) / Double(m))
                        codes[base + chunk * m + 2 * i] = Float(sin(angle))
                        codes[base + chunk * m + 2 * i + 1] = Float(cos(angle))
                    }
                }
            }
        }
        return codes
    }
}
