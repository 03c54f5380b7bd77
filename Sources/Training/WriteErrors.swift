import Foundation

/// "disk full", "permission denied", ... from a Foundation write error.
func describeWriteError(_ error: Error) -> String {
    let error = error as NSError
    let posix = error.domain == NSPOSIXErrorDomain ? error
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
        case NSFileNoSuchFileError, NSFileReadNoSuchFileError: return "a folder on the path does not exist or cannot be created"
        case NSFileWriteVolumeReadOnlyError: return "read-only file system"
        case NSFileWriteInvalidFileNameError: return "not a valid file name (too long?)"
        default: break
        }
    }
    return error.localizedDescription
}
