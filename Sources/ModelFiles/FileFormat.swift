import Settings
import Tensors

/// The version of the files sfkd writes (`state.json`, the model metadata). A file without one
/// is of version 1; a file of a newer version than this build knows is refused.
public enum FileFormat {
    public static let version = 1

    public static func check(_ found: Int?, file: String) throws {
        guard let found, found > version else { return }
        throw UserError(
            "\(file) has format version \(found); this sfkd reads versions up to \(version): use a newer sfkd")
    }
}
