import Cluster
import Settings
import Tensors

/// How the ranks of a job divide the work: the first R ranks are students, each holding a
/// replica and batch/R samples of every global batch; the last `teacherRanks` run the frozen
/// teacher for them. Student s is served by teacher rank R + s mod K.
public struct JobLayout {
    public let world: Communicator
    /// The student ranks among themselves (or the teacher ranks among themselves).
    public let group: Communicator
    public let studentRanks: Int
    public let teacherRanks: Int
    public let localBatchSize: Int

    public var isStudent: Bool { world.rank < studentRanks }
    public var isLeader: Bool { world.rank == 0 }

    init(world: Communicator, teacherRanks: Int, batchSize: Int) throws {
        guard teacherRanks < world.size else {
            throw UserError(
                "config: 'teacher_ranks' \(teacherRanks) leaves no student rank among the \(world.size) ranks of this job; start more ranks (mpirun -n \(teacherRanks + 1) or more)"
            )
        }
        let students = world.size - teacherRanks
        guard batchSize % students == 0 else {
            let lower = batchSize / students * students, upper = lower + students
            throw UserError(
                "config: 'batch_size' \(batchSize) is the global batch and must divide evenly over the \(students) student ranks (\(world.size) ranks, \(teacherRanks) teacher ranks); use \(lower > 0 ? "\(lower) or " : "")\(upper)"
            )
        }
        self.world = world
        self.teacherRanks = teacherRanks
        studentRanks = students
        localBatchSize = batchSize / students
        let student = world.rank < students
        group = try world.split(color: student ? 0 : 1, key: world.rank, name: student ? "students" : "teachers")
    }

    /// The world rank of the teacher rank serving student `student`.
    func teacherRank(serving student: Int) -> Int { studentRanks + student % teacherRanks }

    /// The students this (teacher) rank serves.
    var servedStudents: [Int] { (0..<studentRanks).filter { $0 % teacherRanks == world.rank - studentRanks } }
}
