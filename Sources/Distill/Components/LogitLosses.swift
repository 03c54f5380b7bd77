import Foundation
import Tensors

/// Hinton's KD: tau^2 KL(softmax(z_t / tau) || softmax(z_s / tau)), KL summed over classes and
/// averaged over the batch.
public func knowledgeDistillationLoss(student: Tensor, teacher: Tensor, temperature tau: Float) -> Tensor {
    let target = withNoGrad { softmax(teacher / tau) }
    return klDivergence(logInput: logSoftmax(student / tau), target: target) * (tau * tau)
}

/// Decoupled KD (Zhao et al. 2022): alpha TCKD + beta NCKD, both tau^2 KL; TCKD on the binary
/// (target, rest) split, NCKD on the non-target classes (target logit masked by -1000).
public func decoupledKnowledgeDistillationLoss(
    student: Tensor, teacher: Tensor, labels: [Int], alpha: Float, beta: Float, temperature tau: Float
) -> Tensor {
    let (batch, classes) = (student.shape[0], student.shape[1])
    let targetMask = Tensor(zeros: [batch, classes])
    for (row, label) in labels.enumerated() { targetMask.data[row * classes + label] = 1 }
    let otherMask = withNoGrad { 1 - targetMask }
    func binary(_ p: Tensor) -> Tensor {
        concat(
            [(p * targetMask).sum(axes: [1], keepDims: true), (p * otherMask).sum(axes: [1], keepDims: true)], axis: 1)
    }
    let studentBinary = binary(softmax(student / tau))
    let teacherBinary = withNoGrad { binary(softmax(teacher / tau)) }
    let tckd = klDivergence(logInput: log(studentBinary), target: teacherBinary) * (tau * tau)
    let teacherRest = withNoGrad { softmax(teacher / tau - targetMask * 1000) }
    let nckd = klDivergence(logInput: logSoftmax(student / tau - targetMask * 1000), target: teacherRest) * (tau * tau)
    return tckd * alpha + nckd * beta
}

/// OFA's loss (Hao et al. 2023): -sum_c ((p_t + y)^eps - y)_c log p_s,c averaged over the batch,
/// with one-hot y, at temperature `temperature`; the target gets no gradient.
public func ofaLoss(student: Tensor, teacher: Tensor, labels: [Int], epsilon: Float, temperature: Float = 1) -> Tensor {
    let classes = student.shape[1]
    let target = withNoGrad { () -> Tensor in
        let p = softmax(teacher / temperature)
        let q = Tensor(uninitializedShape: p.shape)
        for (row, label) in labels.enumerated() {
            for c in 0..<classes {
                let y: Float = c == label ? 1 : 0
                q.data[row * classes + c] = Float(pow(Double(p.data[row * classes + c] + y), Double(epsilon))) - y
            }
        }
        return q
    }
    return crossEntropy(temperature == 1 ? student : student / temperature, softTargets: target)
}
