/// What `summary.json` holds, and what `Trainer.run` returns.
public struct RunSummary: Codable, Equatable, Sendable {
    public var model: String
    public var dataset: String
    public var method: String?
    public var parameters: Int
    public var testTop1: Double
    public var testTop5: Double
    public var testLoss: Double
    public var imagesPerSecond: Double
    public var steps: Int
    public var epochs: Double
    public var wallSeconds: Double
    public var threads: Int
    public var ranks: Int
    public var studentRanks: Int
    public var teacherRanks: Int
    /// Image files that did not decode and were skipped (`--skip-bad-images`), as rank 0 met them.
    public var badImages: Int?

    enum CodingKeys: String, CodingKey {
        case model, dataset, method, parameters, steps, epochs, threads, ranks, badImages = "bad_images"
        case testTop1 = "test_top1", testTop5 = "test_top5", testLoss = "test_loss", imagesPerSecond = "images_per_sec"
        case wallSeconds = "wall_seconds", studentRanks = "student_ranks", teacherRanks = "teacher_ranks"
    }
}
