import Foundation
import Settings

/// File names as the file system hands them: bytes. Foundation's directory listing drops a name
/// that is not valid UTF-8, so an image folder would lose that image without a word;
/// torchvision's ImageFolder reads it. Here each byte of such a name that is not part of valid
/// UTF-8 becomes the private-use character U+F700 + byte in the path string (what Python does
/// with lone surrogates, which Swift strings cannot hold), and `fileSystemBytes` turns it back,
/// so the path opens the same file and prints readably.
enum FileNames {
    /// The private-use characters that stand for raw bytes 0x80...0xFF.
    static let escapeBase: UInt32 = 0xF700

    /// `bytes` as a path component: UTF-8 where valid, escaped bytes where not.
    static func string(_ bytes: [UInt8]) -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        var scalars = String.UnicodeScalarView()
        var index = 0
        while index < bytes.count {
            let length = validSequenceLength(bytes, at: index)
            if length > 0, let text = String(validating: bytes[index..<(index + length)], as: UTF8.self) {
                scalars.append(contentsOf: text.unicodeScalars)
                index += length
            } else {
                scalars.append(Unicode.Scalar(escapeBase + UInt32(bytes[index]))!)
                index += 1
            }
        }
        return String(scalars)
    }

    /// The bytes the file system knows `path` by (the escapes of `string` undone), NUL-terminated.
    static func fileSystemBytes(_ path: String) -> [CChar] {
        var bytes: [UInt8] = []
        for scalar in path.unicodeScalars {
            if (escapeBase + 0x80...escapeBase + 0xFF).contains(scalar.value) {
                bytes.append(UInt8(scalar.value - escapeBase))
            } else {
                bytes.append(contentsOf: String(scalar).utf8)
            }
        }
        return bytes.map { CChar(bitPattern: $0) } + [0]
    }

    /// The length of the well-formed UTF-8 sequence starting at `index`, or 0.
    private static func validSequenceLength(_ bytes: [UInt8], at index: Int) -> Int {
        let first = bytes[index]
        let length =
            first < 0x80 ? 1 : first >> 5 == 0b110 ? 2 : first >> 4 == 0b1110 ? 3 : first >> 3 == 0b11110 ? 4 : 0
        guard length > 0, index + length <= bytes.count else { return 0 }
        return String(validating: bytes[index..<(index + length)], as: UTF8.self) == nil ? 0 : length
    }

    /// The entries of the folder `path` (without "." and ".."), as `string` names them.
    static func entries(of path: String) throws -> [String] {
        guard let directory = opendir(fileSystemBytes(path)) else {
            throw UserError("folder \(path) cannot be read (\(String(cString: strerror(errno))))")
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let bytes = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if bytes == [0x2E] || bytes == [0x2E, 0x2E] { continue }
            names.append(string(bytes))
        }
        return names
    }

    /// Whether `path` is a folder; `followingLinks: false` does not count a link to one (a walk
    /// that descended into linked folders could loop forever).
    static func isFolder(_ path: String, followingLinks: Bool = true) -> Bool {
        var info = stat()
        let status = followingLinks ? stat(fileSystemBytes(path), &info) : lstat(fileSystemBytes(path), &info)
        return status == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Whether `path` is a regular file (following symbolic links).
    static func isFile(_ path: String) -> Bool {
        var info = stat()
        return stat(fileSystemBytes(path), &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
    }

    /// The contents of the file at `path`, or nil when it cannot be read.
    static func contents(of path: String) -> Data? {
        let descriptor = open(fileSystemBytes(path), O_RDONLY)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 { return nil }
            if count == 0 { return data }
            data.append(contentsOf: buffer[0..<count])
        }
    }
}
