/// Stops with `message` when `condition` fails. Unlike `precondition`, this survives the
/// `-Ounchecked` release build, so a shape mismatch in a kernel's caller is always reported
/// (naming the op and the shapes) instead of reading out of bounds.
@inline(__always)
public func ensure(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError(message(), file: file, line: line) }
}
