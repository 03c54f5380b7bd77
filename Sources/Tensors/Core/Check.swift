/// Stops with `message` when `condition` fails. Unlike `precondition`, this survives the
/// `-Ounchecked` release build, so a shape mismatch in a kernel's caller is always reported
/// (naming the op and the shapes) instead of reading out of bounds.
@inline(__always)
public func ensure(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID,
    line: UInt = #line
) {
    if !condition() { fatalError(message(), file: file, line: line) }
}

/// The product of sizes read from a file, or nil when one is negative or the product
/// overflows (release builds do not trap on overflow: sizes a user supplies are checked here).
public func checkedProduct(_ sizes: [Int]) -> Int? {
    var product = 1
    for size in sizes {
        guard size >= 0 else { return nil }
        let (result, overflow) = product.multipliedReportingOverflow(by: size)
        if overflow { return nil }
        product = result
    }
    return product
}
