/// A problem with something the user supplied (a flag, a file, a config key): the message says
/// which one, what was expected and what was found. Thrown, never a crash.
public struct UserError: Error, CustomStringConvertible, Equatable {
    public let description: String

    public init(_ description: String) { self.description = description }
}
