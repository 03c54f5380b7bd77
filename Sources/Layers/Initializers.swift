import Foundation
import Tensors

/// PyTorch's default initialisers.
public enum Initializer {
    /// U(-bound, bound).
    public static func uniform(_ t: Tensor, bound: Float, generator: inout RandomGenerator) {
        for i in 0..<t.count { t.data[i] = (2 * generator.nextUniform() - 1) * bound }
    }

    /// N(0, std) truncated to [-2 std, 2 std] by redrawing (timm's trunc_normal_ with its default bounds scaled).
    public static func truncatedNormal(_ t: Tensor, std: Float, generator: inout RandomGenerator) {
        for i in 0..<t.count {
            var v = generator.nextNormal()
            while Swift.abs(v) > 2 { v = generator.nextNormal() }
            t.data[i] = v * std
        }
    }

    /// kaiming_uniform_(a = sqrt(5)) as used by nn.Linear and nn.Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    public static func pytorchDefault(weight: Tensor, bias: Tensor?, fanIn: Int, generator: inout RandomGenerator) {
        let bound = 1 / Float(fanIn).squareRoot()
        uniform(weight, bound: bound, generator: &generator)
        if let bias { uniform(bias, bound: bound, generator: &generator) }
    }

    /// kaiming_normal_(mode = fan_out, relu): N(0, sqrt(2 / fan_out)), the ResNet convention.
    public static func kaimingNormalFanOut(_ t: Tensor, fanOut: Int, generator: inout RandomGenerator) {
        let std = (2 / Float(fanOut)).squareRoot()
        for i in 0..<t.count { t.data[i] = generator.nextNormal() * std }
    }
}
