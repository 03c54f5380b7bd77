import CMPI
import Foundation

/// Process-wide MPI state: initialised once with MPI_THREAD_MULTIPLE (the communication thread
/// calls MPI while the training thread may too), finalised at exit. Without mpirun this is a
/// world of one.
public enum MPIProcess {
    nonisolated(unsafe) private static var initialized = false
    nonisolated(unsafe) public private(set) static var providedThreadLevel: Int32 = 0

    public static func initialize() {
        if initialized { return }
        initialized = true
        var flag: Int32 = 0
        MPI_Initialized(&flag)
        if flag == 0 {
            var provided: Int32 = 0
            MPI_Init_thread(nil, nil, Int32(MPI_THREAD_MULTIPLE), &provided)
            providedThreadLevel = provided
            atexit { MPIProcess.finalize() }
        } else {
            MPI_Query_thread(&providedThreadLevel)
        }
        MPI_Comm_set_errhandler(cmpi_comm_world(), cmpi_errors_return())
    }

    /// Whether this process is one of several MPI ranks (without initialising MPI).
    public static var isParallel: Bool {
        guard initialized else { return false }
        var size: Int32 = 0
        MPI_Comm_size(cmpi_comm_world(), &size)
        return size > 1
    }

    /// Ends the whole job: MPI_Finalize would wait for ranks that are themselves waiting for this one.
    public static func abort(code: Int32) -> Never {
        MPI_Abort(cmpi_comm_world(), code)
        exit(code)
    }

    nonisolated(unsafe) private static var finalizeHooks: [() -> Void] = []

    /// Runs `hook` just before MPI_Finalize (threads that call MPI stop there).
    public static func beforeFinalize(_ hook: @escaping () -> Void) {
        finalizeHooks.append(hook)
    }

    public static func finalize() {
        for hook in finalizeHooks { hook() }
        finalizeHooks.removeAll()
        var initializedFlag: Int32 = 0, finalizedFlag: Int32 = 0
        MPI_Initialized(&initializedFlag)
        MPI_Finalized(&finalizedFlag)
        if initializedFlag != 0 && finalizedFlag == 0 { MPI_Finalize() }
    }

    public static var worldRank: Int {
        initialize()
        var rank: Int32 = 0
        MPI_Comm_rank(cmpi_comm_world(), &rank)
        return Int(rank)
    }

    public static var worldSize: Int {
        initialize()
        var size: Int32 = 0
        MPI_Comm_size(cmpi_comm_world(), &size)
        return Int(size)
    }

    public static var threadLevelName: String {
        switch providedThreadLevel {
        case Int32(MPI_THREAD_SINGLE): return "MPI_THREAD_SINGLE"
        case Int32(MPI_THREAD_FUNNELED): return "MPI_THREAD_FUNNELED"
        case Int32(MPI_THREAD_SERIALIZED): return "MPI_THREAD_SERIALIZED"
        case Int32(MPI_THREAD_MULTIPLE): return "MPI_THREAD_MULTIPLE"
        default: return "unknown (\(providedThreadLevel))"
        }
    }

    /// MPI_Get_library_version, first line (callable before MPI_Init).
    public static var libraryVersion: String {
        var buffer = [CChar](repeating: 0, count: Int(cmpi_max_library_version_string()) + 1)
        var length: Int32 = 0
        MPI_Get_library_version(&buffer, &length)
        let text = String(cString: buffer)
        return text.split(separator: "\n").first.map {
            $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: ","))
        } ?? text
    }
}
