import CPNG
import CTurboJPEG
import Foundation
import Settings
import Tensors

/// An 8-bit image, row after row, `channels` bytes per pixel (HWC): RGB as PIL's
/// `convert("RGB")` gives it, or one grey channel.
public struct PixelImage: Sendable {
    public let width: Int
    public let height: Int
    public let channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int = 3, pixels: [UInt8]) {
        ensure(
            pixels.count == width * height * channels,
            "PixelImage: \(pixels.count) bytes for \(width)x\(height)x\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }
}

/// JPEG (libjpeg-turbo's TurboJPEG API) and PNG (libpng) to 8-bit RGB, chosen
/// by the file's first bytes, not its name. Grayscale, palette, RGBA (alpha dropped, as PIL's
/// `convert("RGB")`), CMYK JPEG and 16-bit PNG (the high byte) all become RGB; anything else, a
/// truncated file or corrupt data is an error naming the file.
public enum ImageDecoder {
    /// Images larger than this are refused before anything is allocated for their pixels.
    public static let maximumPixels = 1 << 27

    public enum Format: String, Sendable { case jpeg, png }

    /// The format the bytes start with, or nil.
    public static func format(of bytes: UnsafeRawBufferPointer) -> Format? {
        if bytes.count >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF { return .jpeg }
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        if bytes.count >= 8 && (0..<8).allSatisfy({ bytes[$0] == signature[$0] }) { return .png }
        return nil
    }

    /// Reads and decodes `path`. A JPEG whose shorter side is at least twice `minimumShortSide`
    /// or more is decoded at the smallest DCT scale (1/2, 1/4, 1/8, ...) that keeps the shorter
    /// side at twice `minimumShortSide` or more: the resize that follows sees the same detail for
    /// a fraction of the work.
    public static func decode(path: String, minimumShortSide: Int? = nil) throws -> PixelImage {
        guard let data = FileNames.contents(of: path) else {
            throw UserError("image \(path) cannot be read")
        }
        return try data.withUnsafeBytes { bytes in
            switch format(of: bytes) {
            case .jpeg: return try decodeJPEG(bytes, path: path, minimumShortSide: minimumShortSide)
            case .png: return try decodePNG(bytes, path: path)
            case nil:
                throw UserError(
                    "image \(path) is neither JPEG nor PNG (its first bytes are \(bytes.prefix(4).map { String(format: "%02x", $0) }.joined(separator: " ")))"
                )
            }
        }
    }

    private struct JPEGHeader { let width: Int, height: Int, colorspace: Int32 }

    private static func jpegHeader(_ handle: tjhandle, _ bytes: UnsafeRawBufferPointer, path: String) throws
        -> JPEGHeader
    {
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let source = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        guard tjDecompressHeader3(handle, source, UInt(bytes.count), &width, &height, &subsampling, &colorspace) == 0
        else {
            throw UserError("image \(path): corrupt JPEG header (\(String(cString: tjGetErrorStr2(handle))))")
        }
        guard width > 0, height > 0, Int(width) * Int(height) <= maximumPixels else {
            throw UserError(
                "image \(path): JPEG of \(width)x\(height) pixels; sfkd reads images of up to \(maximumPixels) pixels")
        }
        return JPEGHeader(width: Int(width), height: Int(height), colorspace: colorspace)
    }

    private static func decodeJPEG(_ bytes: UnsafeRawBufferPointer, path: String, minimumShortSide: Int?) throws
        -> PixelImage
    {
        guard let handle = tjInitDecompress() else { throw UserError("image \(path): TurboJPEG could not start") }
        defer { tjDestroy(handle) }
        let header = try jpegHeader(handle, bytes, path: path)
        var (width, height) = (header.width, header.height)
        if let minimumShortSide, minimumShortSide > 0 {
            (width, height) = scaledSize(width: width, height: height, keepingShortSideAtLeast: 2 * minimumShortSide)
        }
        let cmyk = header.colorspace == Int32(TJCS_CMYK.rawValue) || header.colorspace == Int32(TJCS_YCCK.rawValue)
        let channels = cmyk ? 4 : 3
        var decoded = [UInt8](repeating: 0, count: width * height * channels)
        let source = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        // Warnings (premature end of data, corrupt entropy segments) stop the decode: a damaged
        // file is an error, not a half-grey image.
        let status = decoded.withUnsafeMutableBufferPointer { out in
            tjDecompress2(
                handle, source, UInt(bytes.count), out.baseAddress, Int32(width), 0, Int32(height),
                Int32(cmyk ? TJPF_CMYK.rawValue : TJPF_RGB.rawValue), TJFLAG_STOPONWARNING)
        }
        guard status == 0 else {
            throw UserError("image \(path): corrupt or truncated JPEG (\(String(cString: tjGetErrorStr2(handle))))")
        }
        guard cmyk else { return PixelImage(width: width, height: height, pixels: decoded) }
        // libjpeg gives Adobe's inverted CMYK as stored; PIL's conversion of that to RGB:
        // R = C' * K' / 255 with C' and K' the stored (inverted) values.
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for p in 0..<(width * height) {
            let k = Int(decoded[4 * p + 3])
            for c in 0..<3 { rgb[3 * p + c] = UInt8((Int(decoded[4 * p + c]) * k + 127) / 255) }
        }
        return PixelImage(width: width, height: height, pixels: rgb)
    }

    /// The smallest TurboJPEG scale whose shorter side stays at least `target`.
    public static func scaledSize(width: Int, height: Int, keepingShortSideAtLeast target: Int) -> (Int, Int) {
        var count: Int32 = 0
        guard let factors = tjGetScalingFactors(&count) else { return (width, height) }
        var best = (width, height)
        for i in 0..<Int(count) {
            let f = factors[i]
            guard f.num < f.denom else { continue }
            let w = (width * Int(f.num) + Int(f.denom) - 1) / Int(f.denom),
                h = (height * Int(f.num) + Int(f.denom) - 1) / Int(f.denom)
            if min(w, h) >= target && w * h < best.0 * best.1 { best = (w, h) }
        }
        return best
    }

    private static func decodePNG(_ bytes: UnsafeRawBufferPointer, path: String) throws -> PixelImage {
        var width: UInt32 = 0, height: UInt32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let source = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        guard let pixels = cpng_decode_rgb(source, bytes.count, maximumPixels, &width, &height, &message, message.count)
        else {
            throw UserError("image \(path): corrupt or truncated PNG (\(String(cString: message)))")
        }
        defer { free(pixels) }
        let count = Int(width) * Int(height) * 3
        return PixelImage(
            width: Int(width), height: Int(height), pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
    }
}
