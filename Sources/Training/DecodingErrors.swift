import Foundation

/// A JSON decoding failure in words a user can act on ("field 'step' is missing", "field
/// 'random': expected an array of integers"), not the decoder's debug description.
func describeDecodingError(_ error: Error) -> String {
    guard let error = error as? DecodingError else { return "\(error)" }
    func path(_ context: DecodingError.Context, _ last: CodingKey? = nil) -> String {
        let keys = context.codingPath + (last.map { [$0] } ?? [])
        return keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
    switch error {
    case let .keyNotFound(key, context):
        return "field '\(path(context, key))' is missing"
    case let .valueNotFound(type, context):
        return "field '\(path(context))' is null; expected \(describe(type))"
    case let .typeMismatch(type, context):
        return "field '\(path(context))': expected \(describe(type))"
    case let .dataCorrupted(context):
        return context.codingPath.isEmpty ? "not valid JSON" : "field '\(path(context))' is malformed"
    @unknown default:
        return "\(error)"
    }
}

private func describe(_ type: Any.Type) -> String {
    switch type {
    case is Int.Type, is UInt64.Type: return "an integer"
    case is Double.Type, is Float.Type: return "a number"
    case is String.Type: return "a string"
    case is Bool.Type: return "true or false"
    default: return String(describing: type).hasPrefix("Array") ? "a list" : "an object"
    }
}
