import Foundation
import Settings
import Tensors

/// An exclusive lock on a run folder (`flock` on `.lock`), held by rank 0 for the run's life
/// and released by the kernel when the process ends, however it ends. A second writer is
/// refused with the holder's PID and host.
final class RunLock {
    private let descriptor: Int32
    static let fileName = ".lock"

    init(folder: String) throws {
        let path = (folder as NSString).appendingPathComponent(Self.fileName)
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw UserError("cannot create the lock file \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let holder =
                (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
                ?? ""
            close(descriptor)
            throw UserError(
                "\(folder) is in use by another run (\(holder.isEmpty ? "holder unknown" : holder)); wait for it to end or choose another --out"
            )
        }
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count - 1)
        let text = "pid \(getpid()) on \(String(cString: host))\n"
        ftruncate(descriptor, 0)
        _ = text.withCString { write(descriptor, $0, strlen($0)) }
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
