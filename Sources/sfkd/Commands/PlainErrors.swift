import ArgumentParser
import Foundation

/// One sentence for errors whose own wording does not say what to do: Foundation's file errors
/// (`NSCocoaErrorDomain Code=... UserInfo={...}`) and an option given before the subcommand.
func plainMessage(for error: Error) -> String? {
    let arguments = CommandLine.arguments.dropFirst()
    if let first = arguments.first, first.hasPrefix("-"), !["-h", "--help", "--version"].contains(first),
        SFKDCommand.message(for: error).hasPrefix("Unknown option")
    {
        let names = SFKDCommand.configuration.subcommands.map { $0.configuration.commandName ?? "" }
        return
            "'\(first)' belongs to a subcommand; put one first, e.g. sfkd train \(arguments.joined(separator: " ")) (subcommands: \(names.joined(separator: ", ")); sfkd --help)"
    }
    let error = error as NSError
    guard error.domain == NSCocoaErrorDomain else { return nil }
    let path = (error.userInfo[NSFilePathErrorKey] as? String) ?? (error.userInfo[NSURLErrorKey] as? URL)?.path
    let underlying = (error.userInfo[NSUnderlyingErrorKey] as? NSError).map {
        String(cString: strerror(Int32($0.code)))
    }
    let what = underlying ?? error.localizedDescription
    return path.map { "cannot use '\($0)': \(what)" } ?? what
}
