import Foundation
import Tensors

/// The images of an `ImageFolder` split, decoded when a batch needs them (memory is bounded by
/// the batches in flight, not the dataset) and brought to `size` x `size` by timm's
/// evaluation transform (shorter side to size / crop_pct, centre crop).
///
/// A file that does not decode is an error naming it; with `skipBadImages` it is counted and
/// replaced by the next image of the split that decodes, a choice that depends on the index
/// alone, so every rank and a resumed run make the same one.
public final class ImageFiles: @unchecked Sendable {
    public let folder: ImageFolder
    public let size: Int
    public let cropPercent: Double
    public let interpolation: Interpolation
    public let skipBadImages: Bool
    private let lock = NSLock()
    private var bad: [String: String] = [:]

    public init(folder: ImageFolder, size: Int, cropPercent: Double, interpolation: Interpolation, skipBadImages: Bool) {
        self.folder = folder
        self.size = size
        self.cropPercent = cropPercent
        self.interpolation = interpolation
        self.skipBadImages = skipBadImages
    }

    /// The files found bad so far, with the reason.
    public var badImages: [(path: String, reason: String)] {
        lock.lock()
        defer { lock.unlock() }
        return bad.keys.sorted().map { ($0, bad[$0]!) }
    }

    /// Sample `index` as 3 x size x size bytes, channel-major, into `destination`.
    func write(_ index: Int, into destination: UnsafeMutablePointer<UInt8>) throws {
        var candidate = index
        for _ in 0..<folder.paths.count {
            let path = folder.paths[candidate]
            do {
                let target = Int((Double(size) / cropPercent).rounded(.down))
                let image = try ImageDecoder.decode(path: path, minimumShortSide: target)
                    .resizedAndCenterCropped(size: size, cropPercent: cropPercent, interpolation: interpolation)
                let plane = size * size
                image.pixels.withUnsafeBufferPointer { pixels in
                    for p in 0..<plane {
                        destination[p] = pixels[3 * p]
                        destination[plane + p] = pixels[3 * p + 1]
                        destination[2 * plane + p] = pixels[3 * p + 2]
                    }
                }
                return
            } catch {
                guard skipBadImages else {
                    throw UserError("\(error) (pass --skip-bad-images to count and skip such files)")
                }
                lock.lock()
                bad[path] = "\(error)"
                lock.unlock()
                candidate = (candidate + 1) % folder.paths.count
            }
        }
        throw UserError("dataset 'folder': no image of \(folder.root) decodes")
    }
}
