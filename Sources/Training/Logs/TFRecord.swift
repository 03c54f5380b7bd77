import Foundation
import Settings
import Tensors

/// TensorFlow's TFRecord framing, which TensorBoard's event files use: each record is its
/// length (UInt64, little-endian), the masked CRC-32C of those 8 bytes, the data, and the
/// masked CRC-32C of the data.
public enum TFRecord {
    /// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TensorFlow's `crc32c::Value`.
    public static func crc32c(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 != 0 ? (value >> 1) ^ 0x82F6_3B78 : value >> 1 }
        return value
    }

    /// TensorFlow's `crc32c::Mask`: rotate right by 15 and add a constant, so a CRC of data
    /// holding CRCs stays meaningful.
    public static func masked(_ crc: UInt32) -> UInt32 { ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8 }

    /// One framed record.
    public static func frame(_ data: [UInt8]) -> [UInt8] {
        var length = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 { length[i] = UInt8(truncatingIfNeeded: UInt64(data.count) >> (8 * UInt64(i))) }
        return length + littleEndian(masked(crc32c(length))) + data + littleEndian(masked(crc32c(data)))
    }

    private static func littleEndian(_ value: UInt32) -> [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) }
    }

    /// The records of `bytes`; a bad CRC or a record cut short is an error naming `file` and
    /// the record's offset. A record's length is checked against the bytes left before
    /// anything is allocated for it.
    public static func records(_ bytes: [UInt8], file: String) throws -> [[UInt8]] {
        func word(_ at: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) } }
        var records: [[UInt8]] = [], offset = 0
        while offset < bytes.count {
            guard bytes.count - offset >= 12 else {
                throw UserError("\(file): record at byte \(offset) is cut short in its header")
            }
            let header = Array(bytes[offset..<(offset + 8)])
            guard word(offset + 8) == masked(crc32c(header)) else {
                throw UserError("\(file): record at byte \(offset): the length's CRC does not match")
            }
            let length = header.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
            guard length <= UInt64(bytes.count - offset - 12), bytes.count - offset - 12 - Int(length) >= 4 else {
                throw UserError("\(file): record at byte \(offset) claims \(length) bytes, more than the file holds")
            }
            let start = offset + 12, end = start + Int(length)
            let data = Array(bytes[start..<end])
            guard word(end) == masked(crc32c(data)) else {
                throw UserError("\(file): record at byte \(offset): the data's CRC does not match")
            }
            records.append(data)
            offset = end + 4
        }
        return records
    }
}
