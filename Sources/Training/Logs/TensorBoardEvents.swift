import Foundation
import ModelFiles
import Settings
import Tensors

/// TensorBoard's `Event` protocol buffer, the few fields a scalar log needs, encoded and
/// decoded by hand on the wire format: `wall_time` (1, double), `step` (2, int64),
/// `file_version` (3, string), `summary` (5: repeated `value` (1) of `tag` (1, string) and
/// `simple_value` (2, float)), `session_log` (6: `status` (1), START = 1, which tells
/// TensorBoard to drop the events of later steps, as a resumed run needs).
public struct TensorBoardEvent: Equatable, Sendable {
    public var wallTime: Double
    public var step: Int
    public var fileVersion: String?
    public var scalars: [(tag: String, value: Float)]
    public var sessionStart = false

    public init(
        wallTime: Double, step: Int, fileVersion: String? = nil, scalars: [(tag: String, value: Float)] = [],
        sessionStart: Bool = false
    ) {
        self.wallTime = wallTime
        self.step = step
        self.fileVersion = fileVersion
        self.scalars = scalars
        self.sessionStart = sessionStart
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.wallTime == b.wallTime && a.step == b.step && a.fileVersion == b.fileVersion
            && a.sessionStart == b.sessionStart
            && a.scalars.map(\.tag) == b.scalars.map(\.tag) && a.scalars.map(\.value) == b.scalars.map(\.value)
    }

    // MARK: Encoding

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.key(1, wire: 1)
        out.fixed64(wallTime.bitPattern)
        out.key(2, wire: 0)
        out.varint(UInt64(bitPattern: Int64(step)))
        if let fileVersion { out.bytesField(3, Array(fileVersion.utf8)) }
        if !scalars.isEmpty {
            var summary: [UInt8] = []
            for (tag, value) in scalars {
                var entry: [UInt8] = []
                entry.bytesField(1, Array(tag.utf8))
                entry.key(2, wire: 5)
                entry.fixed32(value.bitPattern)
                summary.bytesField(1, entry)
            }
            out.bytesField(5, summary)
        }
        if sessionStart {
            var log: [UInt8] = []
            log.key(1, wire: 0)
            log.varint(1)
            out.bytesField(6, log)
        }
        return out
    }

    // MARK: Decoding

    /// Decodes an event; fields it does not know are skipped, malformed bytes are an error.
    public init(decoding bytes: [UInt8]) throws {
        var reader = WireReader(bytes: bytes[...])
        wallTime = 0
        step = 0
        scalars = []
        while let (field, wire) = try reader.key() {
            switch (field, wire) {
            case (1, 1): wallTime = Double(bitPattern: try reader.fixed64())
            case (2, 0): step = Int(Int64(bitPattern: try reader.varint()))
            case (3, 2): fileVersion = String(decoding: try reader.lengthDelimited(), as: UTF8.self)
            case (5, 2):
                var summary = WireReader(bytes: try reader.lengthDelimited())
                while let (field, wire) = try summary.key() {
                    guard field == 1, wire == 2 else {
                        try summary.skip(wire: wire)
                        continue
                    }
                    var entry = WireReader(bytes: try summary.lengthDelimited())
                    var tag = "", value: Float?
                    while let (field, wire) = try entry.key() {
                        switch (field, wire) {
                        case (1, 2): tag = String(decoding: try entry.lengthDelimited(), as: UTF8.self)
                        case (2, 5): value = Float(bitPattern: try entry.fixed32())
                        default: try entry.skip(wire: wire)
                        }
                    }
                    if let value { scalars.append((tag, value)) }
                }
            case (6, 2):
                var log = WireReader(bytes: try reader.lengthDelimited())
                while let (field, wire) = try log.key() {
                    if field == 1, wire == 0 { sessionStart = try log.varint() == 1 } else { try log.skip(wire: wire) }
                }
            default: try reader.skip(wire: wire)
            }
        }
    }
}

/// Protocol-buffer wire reading over a byte slice; every length is checked against the bytes left.
struct WireReader {
    var bytes: ArraySlice<UInt8>

    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            guard let byte = bytes.popFirst() else { throw Malformed(description: "a varint is cut short") }
            value |= UInt64(byte & 0x7F) << UInt64(shift)
            if byte & 0x80 == 0 { return value }
        }
        throw Malformed(description: "a varint runs past 10 bytes")
    }

    /// The next field number and wire type, or nil at the end.
    mutating func key() throws -> (Int, Int)? {
        guard !bytes.isEmpty else { return nil }
        let key = try varint()
        return (Int(key >> 3), Int(key & 7))
    }

    mutating func fixed(_ count: Int) throws -> UInt64 {
        guard bytes.count >= count else { throw Malformed(description: "a fixed-width field is cut short") }
        let value = bytes.prefix(count).enumerated().reduce(UInt64(0)) {
            $0 | UInt64($1.element) << (8 * UInt64($1.offset))
        }
        bytes = bytes.dropFirst(count)
        return value
    }

    mutating func fixed64() throws -> UInt64 { try fixed(8) }
    mutating func fixed32() throws -> UInt32 { UInt32(try fixed(4)) }

    mutating func lengthDelimited() throws -> ArraySlice<UInt8> {
        let length = try varint()
        guard length <= UInt64(bytes.count) else {
            throw Malformed(description: "a field claims \(length) bytes, \(bytes.count) are left")
        }
        let value = bytes.prefix(Int(length))
        bytes = bytes.dropFirst(Int(length))
        return value
    }

    mutating func skip(wire: Int) throws {
        switch wire {
        case 0: _ = try varint()
        case 1: _ = try fixed(8)
        case 2: _ = try lengthDelimited()
        case 5: _ = try fixed(4)
        default: throw Malformed(description: "wire type \(wire) is not one an Event uses")
        }
    }
}

private extension [UInt8] {
    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        append(UInt8(v))
    }

    mutating func key(_ field: Int, wire: Int) { varint(UInt64(field << 3 | wire)) }
    mutating func fixed64(_ value: UInt64) {
        for i in 0..<8 { append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
    }
    mutating func fixed32(_ value: UInt32) {
        for i in 0..<4 { append(UInt8(truncatingIfNeeded: value >> (8 * UInt32(i)))) }
    }

    mutating func bytesField(_ field: Int, _ data: some Collection<UInt8>) {
        key(field, wire: 2)
        varint(UInt64(data.count))
        append(contentsOf: data)
    }
}

/// Writes a run's scalars as a TensorBoard event file (`events.out.tfevents.<time>.<host>`)
/// in the run folder, one event per metrics record; `tensorboard --logdir runs/` reads them.
final class TensorBoardWriter {
    private let handle: FileHandle
    let path: String

    /// A new event file; `resumingAt` starts it with a session-start event at that step, so
    /// TensorBoard drops what an earlier file logged after the checkpoint.
    init(folder: String, resumingAt step: Int?) throws {
        let host = ProcessInfo.processInfo.hostName.replacingOccurrences(of: "/", with: "_")
        // A new name even for a second file within the same second (a resume in one process).
        var name = "events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(host).\(getpid()).sfkd", copy = 1
        while FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent(name)) {
            copy += 1
            name = "events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(host).\(getpid()).\(copy).sfkd"
        }
        path = (folder as NSString).appendingPathComponent(name)
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let handle = FileHandle(forWritingAtPath: path)
        else {
            throw UserError("cannot create the TensorBoard event file \(path) (is the folder writable?)")
        }
        self.handle = handle
        try write(TensorBoardEvent(wallTime: Date().timeIntervalSince1970, step: 0, fileVersion: "brain.Event:2"))
        if let step {
            try write(TensorBoardEvent(wallTime: Date().timeIntervalSince1970, step: step, sessionStart: true))
        }
    }

    func write(_ event: TensorBoardEvent) throws {
        do {
            try handle.write(contentsOf: Data(TFRecord.frame(event.encoded())))
        } catch {
            throw UserError(
                "writing \(path) failed (\(describeWriteError(error))); the last complete checkpoint is intact")
        }
    }

    /// A metrics record's numbers as scalars tagged `<kind>/<name>` at its step.
    func log(_ record: MetricsRecord) throws {
        let scalars = record.values.keys.sorted().map { name in
            (tag: "\(record.kind.rawValue)/\(name)", value: Float(record.values[name]!))
        }
        guard !scalars.isEmpty else { return }
        try write(TensorBoardEvent(wallTime: Date().timeIntervalSince1970, step: record.step, scalars: scalars))
    }

    deinit { try? handle.close() }
}

/// Reads an event file back: every record's CRCs checked, every event decoded.
public enum TensorBoardEventFile {
    public static func read(_ path: String) throws -> [TensorBoardEvent] {
        guard let data = FileManager.default.contents(atPath: path) else { throw UserError("cannot read \(path)") }
        return try TFRecord.records([UInt8](data), file: path).enumerated().map { index, record in
            do { return try TensorBoardEvent(decoding: record) } catch {
                throw UserError("\(path): event \(index + 1) is malformed (\(error))")
            }
        }
    }
}
