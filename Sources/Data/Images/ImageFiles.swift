import Foundation
import Settings
import Tensors

/// The images of an `ImageFolder` split, decoded when a batch needs them (memory is bounded by
/// the batches in flight, not the dataset).
///
/// A file that does not decode is an error naming it; with `skipBadImages` it is counted and
/// replaced by the next image of the split that decodes, a choice that depends on the index
/// alone, so every rank and a resumed run make the same one.
public final class ImageFiles: @unchecked Sendable {
    public let folder: ImageFolder
    public let skipBadImages: Bool
    private let lock = NSLock()
    private var bad: [String: String] = [:]

    public init(folder: ImageFolder, skipBadImages: Bool) {
        self.folder = folder
        self.skipBadImages = skipBadImages
    }

    /// The files found bad so far, with the reason.
    public var badImages: [(path: String, reason: String)] {
        lock.lock()
        defer { lock.unlock() }
        return bad.keys.sorted().map { ($0, bad[$0]!) }
    }

    private func isKnownBad(_ path: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return bad[path] != nil
    }

    /// Image `index` decoded (a large JPEG at a DCT scale that keeps its shorter side at twice
    /// `minimumShortSide` or more).
    func image(at index: Int, minimumShortSide: Int?) throws -> PixelImage {
        var candidate = index
        for _ in 0..<folder.paths.count {
            let path = folder.paths[candidate]
            // A file found bad before is not decoded again.
            if skipBadImages && isKnownBad(path) {
                candidate = (candidate + 1) % folder.paths.count
                continue
            }
            do {
                return try ImageDecoder.decode(path: path, minimumShortSide: minimumShortSide)
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
