import Foundation
import Settings
import Tensors

/// One split in torchvision's `ImageFolder` layout: ROOT/<class>/<image>, classes sorted by
/// name and numbered from 0 in that order, images sorted by path; `.jpg`, `.jpeg` and `.png`
/// in any case (other files and hidden entries are ignored, as ImageFolder ignores them).
public struct ImageFolder: Sendable {
    public let root: String
    public let classNames: [String]
    public let paths: [String]
    public let labels: [Int32]

    public static let extensions: Set<String> = ["jpg", "jpeg", "png"]

    /// Scans `root`; a missing folder, a folder without class folders and a class folder
    /// without images are errors naming the folder.
    public static func scan(_ root: String, split: String) throws -> ImageFolder {
        guard FileNames.isFolder(root) else {
            throw UserError(
                "dataset 'folder': the \(split) split \(root) is not a folder (expected \(root)/<class>/<image>.jpg|.jpeg|.png)"
            )
        }
        // Listed as bytes (FileNames): a name that is not UTF-8 is read, not dropped.
        let classNames = try FileNames.entries(of: root).filter {
            !$0.hasPrefix(".") && FileNames.isFolder("\(root)/\($0)")
        }.sorted()
        guard !classNames.isEmpty else {
            throw UserError(
                "dataset 'folder': \(root) has no class folders (expected \(root)/<class>/<image>.jpg|.jpeg|.png)")
        }
        var paths: [String] = [], labels: [Int32] = []
        for (label, name) in classNames.enumerated() {
            let folder = "\(root)/\(name)"
            var found: [String] = []
            try collectImages(in: folder, into: &found)
            guard !found.isEmpty else {
                throw UserError("dataset 'folder': class folder \(folder) has no .jpg, .jpeg or .png images")
            }
            found.sort()
            paths += found
            labels += [Int32](repeating: Int32(label), count: found.count)
        }
        return ImageFolder(root: root, classNames: classNames, paths: paths, labels: labels)
    }

    /// The image files under `folder`, its subfolders included (hidden entries skipped; linked
    /// folders not entered, as Foundation's walk does not, so a link loop ends).
    private static func collectImages(in folder: String, into found: inout [String]) throws {
        for name in try FileNames.entries(of: folder) where !name.hasPrefix(".") {
            let path = "\(folder)/\(name)"
            if FileNames.isFolder(path, followingLinks: false) {
                try collectImages(in: path, into: &found)
            } else if extensions.contains((name as NSString).pathExtension.lowercased()), FileNames.isFile(path) {
                found.append(path)
            }
        }
    }

    /// Both splits, with the same classes: a class in one split but not the other is an error listing them.
    public static func splits(train: String, val: String) throws -> (train: ImageFolder, val: ImageFolder) {
        let trainFolder = try scan(train, split: "train"), valFolder = try scan(val, split: "val")
        if trainFolder.classNames != valFolder.classNames {
            let onlyTrain = Set(trainFolder.classNames).subtracting(valFolder.classNames).sorted()
            let onlyVal = Set(valFolder.classNames).subtracting(trainFolder.classNames).sorted()
            var parts: [String] = []
            if !onlyTrain.isEmpty { parts.append("only in \(train): \(onlyTrain.joined(separator: ", "))") }
            if !onlyVal.isEmpty { parts.append("only in \(val): \(onlyVal.joined(separator: ", "))") }
            throw UserError(
                "dataset 'folder': the splits have different classes (\(parts.joined(separator: "; "))); every class needs a folder in both"
            )
        }
        return (trainFolder, valFolder)
    }
}
