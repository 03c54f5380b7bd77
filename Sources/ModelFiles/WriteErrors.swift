import Foundation

/// "disk full", "permission denied", ... from a Foundation write error. With the `folder` that
/// was being created or written into, a file where it or one of its parents should be is named.
public func describeWriteError(_ error: Error, folder: String? = nil) -> String {
    if let folder, let file = fileInPlaceOfFolder(folder) { return "'\(file)' is a file, not a folder" }
    let error = error as NSError
    let posix =
        error.domain == NSPOSIXErrorDomain
        ? error
        : (error.userInfo[NSUnderlyingErrorKey] as? NSError).flatMap { $0.domain == NSPOSIXErrorDomain ? $0 : nil }
    if let posix {
        switch Int32(posix.code) {
        case ENOSPC: return "disk full"
        case EDQUOT: return "disk quota exceeded"
        case EACCES, EPERM: return "permission denied"
        default: return String(cString: strerror(Int32(posix.code)))
        }
    }
    if error.domain == NSCocoaErrorDomain {
        switch error.code {
        case NSFileWriteOutOfSpaceError: return "disk full"
        case NSFileWriteNoPermissionError, NSFileReadNoPermissionError: return "permission denied"
        case NSFileNoSuchFileError, NSFileReadNoSuchFileError:
            return "a folder on the path does not exist or cannot be created"
        case NSFileWriteVolumeReadOnlyError: return "read-only file system"
        case NSFileWriteInvalidFileNameError: return "not a valid file name (too long?)"
        default: break
        }
    }
    return error.localizedDescription
}

/// The first of `folder` and its parents, from the root down, that exists and is not a folder.
func fileInPlaceOfFolder(_ folder: String) -> String? {
    var chain: [URL] = []
    var url = URL(fileURLWithPath: folder).standardizedFileURL
    while url.path != "/" && !url.path.isEmpty {
        chain.append(url)
        url = url.deletingLastPathComponent()
    }
    for candidate in chain.reversed() {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isFolder) else { return nil }
        if !isFolder.boolValue { return candidate.path }
    }
    return nil
}
