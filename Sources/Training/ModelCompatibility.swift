import Data
import ModelFiles
import Settings

extension ModelDescription {
    /// Refuses a dataset of another shape or class count than the model was built for.
    public func checkCompatible(with splits: DatasetSplits, path: String) throws {
        guard splits.shape == inputShape && splits.classes == classes else {
            throw UserError(
                "\(path) holds \(architecture) for \(dataset) (input \(inputShape), \(classes) classes); dataset '\(splits.name)' gives input \(splits.shape) with \(splits.classes) classes"
            )
        }
        if let classNames, let names = splits.train.classNames, names != classNames {
            let differing = zip(classNames, names).enumerated().first { $0.element.0 != $0.element.1 }
            throw UserError(
                "\(path) was trained on the classes \(classNames.prefix(5).joined(separator: ", "))...; the dataset's class folders differ\(differing.map { " (label \($0.offset): '\($0.element.0)' in the model, '\($0.element.1)' in the dataset)" } ?? "")"
            )
        }
    }
}
