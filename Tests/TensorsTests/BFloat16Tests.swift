import Foundation
import Tensors
import TestSupport
import XCTest

/// `Autocast.run(.bfloat16)`: products and convolutions round their inputs to bfloat16 and
/// accumulate in float32, emulated on any CPU and on oneDNN's bfloat16 kernels where the CPU
/// has them.
final class BFloat16Tests: XCTestCase {
    /// Round to nearest, ties to even, computed from the value (Double arithmetic), not its bits.
    private func referenceRounding(_ value: Float) -> Float {
        guard value.isFinite, value != 0 else { return value }
        // value = significand * 2^exponent; 7 stored mantissa bits, fixed spacing below 2^-126
        let spacing = pow(2.0, Double(max(Int(value.exponent), -126)) - 7)
        let steps = Double(value) / spacing
        var nearest = steps.rounded(.toNearestOrEven)
        if Swift.abs(steps - steps.rounded(.towardZero)) != 0.5 { nearest = steps.rounded() }
        return Float(nearest * spacing)
    }

    func testRoundingIsToNearestEvenWithNaNKept() {
        var values: [Float] = [
            0, -0, 1, -1, 1 + 1 / 256, 1 + 3 / 256, 1 + 1 / 512, 1 + 3 / 512, -(1 + 3 / 512), .pi, 1e-40, -3e-39,
            .greatestFiniteMagnitude, .infinity, -.infinity, Float(bitPattern: 0x3F80_8000),
            Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x3F80_7FFF),
        ]
        var generator = RandomGenerator(seed: 5)
        for _ in 0..<1000 { values.append((generator.nextUniform() - 0.5) * pow(10, 8 * generator.nextUniform() - 4)) }
        let input = Tensor(values, shape: [values.count]), output = Tensor(zeros: [values.count])
        BFloat16.round(input.data, into: output.data, count: values.count)
        for (i, value) in values.enumerated() {
            let expected = value == .greatestFiniteMagnitude ? Float.infinity : referenceRounding(value)
            XCTAssertEqual(output.data[i].bitPattern, expected.bitPattern, "rounding \(value)")
            XCTAssertEqual(BFloat16.word(value), UInt16(expected.bitPattern >> 16), "word of \(value)")
        }
        let nan = Tensor([.nan, Float(bitPattern: 0x7F80_0001)], shape: [2])
        BFloat16.round(nan.data, into: nan.data, count: 2)
        XCTAssertTrue(nan.data[0].isNaN && nan.data[1].isNaN, "a NaN stays a NaN, even one in the low bits")
    }

    /// One op with its inputs: forward at the current `Autocast` precision.
    struct Op {
        let name: String
        let shapes: [[Int]]
        let apply: ([Tensor]) -> Tensor
        /// Whether the op rounds only its inputs (and the output gradient), so the float32 op on
        /// rounded inputs is its exact reference.
        var roundsOnlyItsInputs = true
        /// Whether finite differences can check it: over 128 tokens the probabilities (about
        /// 1/128) move by less than their bfloat16 spacing for any step small enough for the
        /// softmax's curvature, so the quotient measures the rounding; that case is checked
        /// against float32 and native against emulated instead.
        var finiteDifferences = true
    }

    let ops: [Op] = [
        Op(name: "matmul", shapes: [[3, 37, 70], [70, 45]]) { matmul($0[0], $0[1]) },
        Op(name: "linear", shapes: [[4, 9, 64], [48, 64], [48]]) { linear($0[0], weight: $0[1], bias: $0[2]) },
        Op(name: "linearAcrossTokens", shapes: [[3, 40, 24], [36, 40], [36]]) {
            linearAcrossTokens($0[0], weight: $0[1], bias: $0[2])
        },
        Op(name: "batchedMatmul^T", shapes: [[3, 40, 33], [3, 29, 40]]) {
            batchedMatmul($0[0], $0[1], transposeA: true, transposeB: true)
        },
        Op(name: "conv 3x3", shapes: [[4, 32, 12, 12], [48, 32, 3, 3], [48]]) {
            conv2d($0[0], weight: $0[1], bias: $0[2], padding: (1, 1))
        },
        Op(name: "conv strided grouped", shapes: [[2, 32, 11, 11], [32, 16, 3, 3]]) {
            conv2d($0[0], weight: $0[1], stride: (2, 2), padding: (1, 1), groups: 2)
        },
        Op(name: "conv depthwise 7x7", shapes: [[2, 32, 9, 9], [32, 1, 7, 7]]) {
            conv2d($0[0], weight: $0[1], padding: (3, 3), groups: 32)
        },
        Op(name: "conv 1x1", shapes: [[3, 64, 6, 6], [32, 64, 1, 1]]) { conv2d($0[0], weight: $0[1]) },
        // Heads of 2^20 multiply-adds per product and more run on the bfloat16 GEMM, smaller
        // ones round their inputs once and multiply in float32 (`AttentionArithmetic`).
        Op(
            name: "attention large heads", shapes: [[1, 128, 3 * 128]],
            apply: { packedSelfAttention($0[0], heads: 2) }, roundsOnlyItsInputs: false, finiteDifferences: false),
        Op(
            name: "attention small heads", shapes: [[2, 20, 3 * 64]], apply: { packedSelfAttention($0[0], heads: 2) },
            roundsOnlyItsInputs: false),
        Op(
            name: "attention narrow heads", shapes: [[2, 30, 3 * 32]], apply: { packedSelfAttention($0[0], heads: 4) },
            roundsOnlyItsInputs: false),
    ]

    /// The op's output and its inputs' gradients for a fixed output gradient.
    private func evaluate(_ op: Op, _ inputs: [Tensor], precision: Precision, seed: Tensor? = nil) -> [[Float]] {
        for x in inputs {
            x.requiresGrad = true
            x.grad = nil
        }
        Tape.current.reset()
        let y = Autocast.run(precision) { op.apply(inputs) }
        let seed = seed ?? randomTensor(y.shape, seed: 77, requiresGrad: false)
        y.backward(seed: seed)  // outside the scope: backward keeps the forward's precision
        return [Array(UnsafeBufferPointer(start: y.data, count: y.count))]
            + inputs.map { Array(UnsafeBufferPointer(start: $0.grad!.data, count: $0.count)) }
    }

    private func inputs(_ op: Op) -> [Tensor] {
        op.shapes.enumerated().map { randomTensor($1, seed: UInt64(10 + $0)) }
    }

    /// |a - b| <= tolerance * max |b|, per output and gradient.
    private func assertClose(
        _ a: [[Float]], _ b: [[Float]], _ tolerance: Float, _ what: String, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        for (index, (x, y)) in zip(a, b).enumerated() {
            let scale = y.map(Swift.abs).max() ?? 0
            let worst = zip(x, y).map { Swift.abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(
                worst, tolerance * max(scale, 1e-6),
                "\(what), \(index == 0 ? "output" : "gradient of input \(index - 1)"): \(worst) of \(scale)",
                file: file, line: line)
        }
    }

    /// The emulated op equals the float32 op on its input and weight (and, for their gradients,
    /// the output gradient) rounded beforehand: the rounding is exactly where autocast puts it.
    /// A bias is added in float32 and its gradient sums the float32 output gradient.
    func testEmulatedIsTheFloat32OpOnRoundedInputs() {
        BFloat16Arithmetic.pinned(.emulated) {
            for op in ops where op.roundsOnlyItsInputs {
                let x = inputs(op)
                let seedShape = withNoGrad { op.apply(x) }.shape
                let seed = randomTensor(seedShape, seed: 77, requiresGrad: false)
                let bf16 = evaluate(op, x, precision: .bfloat16, seed: seed)
                let rounded = x.enumerated().map { $0 < 2 ? $1.roundedToBFloat16() : $1 }
                let reference = evaluate(op, rounded, precision: .float32, seed: seed.roundedToBFloat16())
                assertClose(Array(bf16.prefix(3)), Array(reference.prefix(3)), 2e-6, op.name)
                if x.count == 3 {
                    let bias = evaluate(op, rounded, precision: .float32, seed: seed)[3]
                    assertClose([bf16[3]], [bias], 2e-6, "\(op.name) bias gradient")
                }
            }
        }
    }

    /// Each op at bfloat16 is within bfloat16's precision of its float32 result (8 significant
    /// bits per input: about 2^-9 relative per factor; sums of random signs cancel less).
    func testEachOpIsWithinBFloat16ToleranceOfFloat32() {
        for arithmetic in arithmetics {
            BFloat16Arithmetic.pinned(arithmetic) {
                for op in ops {
                    let x = inputs(op)
                    assertClose(
                        evaluate(op, x, precision: .bfloat16), evaluate(op, x, precision: .float32), 2e-2,
                        "\(op.name) (\(arithmetic))")
                }
            }
        }
    }

    /// Native and emulated round alike and differ only in the order of float32 additions.
    func testNativeAgreesWithEmulated() throws {
        try XCTSkipUnless(BFloat16Arithmetic.hardware, "this CPU has no bfloat16 instructions: only the emulation runs")
        for threads in [1, 2] {
            let previous = Threads.count
            defer { Threads.configure(previous) }
            Threads.configure(threads)
            for op in ops {
                let x = inputs(op)
                let native = BFloat16Arithmetic.pinned(.native) { evaluate(op, x, precision: .bfloat16) }
                let emulated = BFloat16Arithmetic.pinned(.emulated) { evaluate(op, x, precision: .bfloat16) }
                assertClose(native, emulated, 1e-5, "\(op.name) native against emulated, \(threads) threads")
            }
        }
    }

    /// Backward against finite differences through the rounding: products are linear in each
    /// input, so a step of 0.25 (64 bfloat16 spacings at 1) keeps the rounding's share of the
    /// difference under 1%.
    func testGradientsAgainstFiniteDifferences() {
        for arithmetic in arithmetics {
            BFloat16Arithmetic.pinned(arithmetic) {
                for op in ops where op.roundsOnlyItsInputs {
                    let x = inputs(op)
                    checkGradients(x, step: 0.25, tolerance: 3e-2) { Autocast.run(.bfloat16) { op.apply(x) } }
                }
            }
        }
    }

    func testAttentionGradientsAgainstFiniteDifferences() {
        for arithmetic in arithmetics {
            BFloat16Arithmetic.pinned(arithmetic) {
                for op in ops where !op.roundsOnlyItsInputs && op.finiteDifferences {
                    let x = inputs(op)
                    checkGradients(x, step: 0.1, tolerance: 6e-2) { Autocast.run(.bfloat16) { op.apply(x) } }
                }
            }
        }
    }

    /// Under bf16 a GELU writes its output's bfloat16 words as it goes, for the product after
    /// it: the same products as converting the output there (a copy without the words), on a
    /// size whose parallel chunks and 2048-value blocks end mid-vector.
    func testAGELUsWordsAreItsRoundedOutput() {
        let x = randomTensor([3, 1001, 24], seed: 5, requiresGrad: false)
        let weight = randomTensor([16, 24], seed: 6, requiresGrad: false)
        for arithmetic in arithmetics {
            BFloat16Arithmetic.pinned(arithmetic) {
                let (fused, plain) = Autocast.run(.bfloat16) {
                    withNoGrad {
                        let y = gelu(x), copy = Tensor(y.array, shape: y.shape)
                        return (
                            linear(y, weight: weight, bias: nil).array, linear(copy, weight: weight, bias: nil).array
                        )
                    }
                }
                XCTAssertEqual(fused, plain, "\(arithmetic)")
            }
        }
    }

    /// A constant weight converted once (a frozen teacher's) gives the products that converting
    /// it per product gives, bit for bit.
    func testAWeightConvertedOnceGivesTheSameProducts() throws {
        try XCTSkipUnless(BFloat16Arithmetic.hardware, "the converted copy serves the native kernels only")
        // Native pinned: SFKD_BF16=emulated in the environment would otherwise read the values.
        BFloat16Arithmetic.pinned(.native) {
            let x = randomTensor([5, 7, 64], seed: 3, requiresGrad: false)
            let weight = randomTensor([48, 64], seed: 4, requiresGrad: false)
            let square = randomTensor([64, 64], seed: 5, requiresGrad: false)
            let perProduct = withNoGrad {
                Autocast.run(.bfloat16) { [linear(x, weight: weight, bias: nil).array, matmul(x, square).array] }
            }
            weight.keepBFloat16Copy()
            square.keepBFloat16Copy()
            XCTAssertEqual(weight.bfloat16Copy?.count, weight.count)
            let once = withNoGrad {
                Autocast.run(.bfloat16) { [linear(x, weight: weight, bias: nil).array, matmul(x, square).array] }
            }
            XCTAssertEqual(once, perProduct)
            // The products read the copy, not the values (which a constant weight never changes).
            weight.fill(0)
            square.fill(0)
            let stale = withNoGrad {
                Autocast.run(.bfloat16) { [linear(x, weight: weight, bias: nil).array, matmul(x, square).array] }
            }
            XCTAssertEqual(stale, perProduct)
        }
    }

    /// The arithmetics this CPU runs.
    private var arithmetics: [BFloat16Arithmetic] {
        BFloat16Arithmetic.hardware ? [.emulated, .native] : [.emulated]
    }

    func testPrecisionScopeRestoresAndPinnedNativeNeedsHardware() {
        XCTAssertEqual(Autocast.precision, .float32)
        Autocast.run(.bfloat16) {
            XCTAssertEqual(Autocast.precision, .bfloat16)
            Autocast.run(.float32) { XCTAssertEqual(Autocast.precision, .float32) }
            XCTAssertEqual(Autocast.precision, .bfloat16)
        }
        XCTAssertEqual(Autocast.precision, .float32)
        XCTAssertEqual(
            BFloat16Arithmetic.pinned(.automatic) { BFloat16Arithmetic.effective },
            BFloat16Arithmetic.hardware ? .native : .emulated)
        XCTAssertTrue(BFloat16Arithmetic.summary.hasPrefix(BFloat16Arithmetic.effective.rawValue))
    }
}
