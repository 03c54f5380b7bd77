import Foundation

/// The arithmetic of matrix products and convolutions: float32, or bfloat16 inputs with float32
/// accumulation (PyTorch's CPU autocast to bfloat16).
public enum Precision: String, Sendable, CaseIterable, Codable {
    case float32 = "fp32"
    case bfloat16 = "bf16"
}

/// PyTorch's `torch.autocast("cpu", dtype=torch.bfloat16)`: inside `Autocast.run(.bfloat16)`,
/// convolutions, matrix products, linear layers and attention products round their inputs to
/// bfloat16 (to nearest, ties to even) and accumulate in float32; their outputs, every other op
/// (normalisations, softmax, the losses, reductions) and all parameters and gradients stay
/// float32. Each op records the precision it ran at, so its backward uses the same one after
/// the scope has ended, as PyTorch's does.
public enum Autocast {
    /// The precision ops run at now. One value per process, as `Tape.current`: a step's forward
    /// runs on one thread and its ops split their work themselves.
    nonisolated(unsafe) public private(set) static var precision: Precision = .float32

    /// Runs `body` with ops at `precision`, then restores the previous one.
    public static func run<T>(_ precision: Precision, _ body: () throws -> T) rethrows -> T {
        let previous = self.precision
        self.precision = precision
        defer { self.precision = previous }
        return try body()
    }
}

/// How bfloat16 products run. `native`: oneDNN's bfloat16 kernels, where the CPU computes
/// bfloat16 (AVX512_BF16 or AMX: twice the float32 rate). `emulated`: inputs rounded to
/// bfloat16 and multiplied by the float32 kernels, on any CPU: the same rounding, so the same
/// results up to the order of float32 additions, and no speed gained. `SFKD_BF16=emulated`
/// pins the emulation for a run; tests pin either to compare them.
public enum BFloat16Arithmetic: String, Sendable, CaseIterable {
    case automatic, native, emulated

    nonisolated(unsafe) public static var choice = fromEnvironment("SFKD_BF16") ?? .automatic

    /// Runs `body` with `arithmetic` pinned, then goes back to the previous choice.
    public static func pinned<T>(_ arithmetic: BFloat16Arithmetic, _ body: () throws -> T) rethrows -> T {
        let previous = choice
        choice = arithmetic
        defer { choice = previous }
        return try body()
    }

    /// Whether this CPU has bfloat16 instructions oneDNN uses.
    public static var hardware: Bool { OneDNN.hasBFloat16 }

    /// The arithmetic bfloat16 ops run with. `native` pinned on a CPU without bfloat16 stops
    /// the program with exit status 2: oneDNN would refuse or run a slow emulation of its own.
    public static var effective: BFloat16Arithmetic {
        switch choice {
        case .automatic: return hardware ? .native : .emulated
        case .emulated: return .emulated
        case .native:
            if !hardware {
                fputs(
                    "Error: SFKD_BF16=native: this CPU has no bfloat16 instructions (oneDNN runs \(OneDNN.instructionSet)); unset it to emulate bf16\n",
                    stderr)
                exit(2)
            }
            return .native
        }
    }

    /// One line for `sfkd info`, `bench` and a run's start-up.
    public static var summary: String {
        effective == .native
            ? "native (oneDNN \(OneDNN.instructionSet): bfloat16 at twice the float32 rate)"
            : hardware
                ? "emulated (pinned by SFKD_BF16; this CPU has bfloat16 instructions)"
                : "emulated (no AVX512_BF16 or AMX on this CPU, oneDNN \(OneDNN.instructionSet): "
                    + "inputs rounded to bfloat16, float32 arithmetic, no speed gained)"
    }
}
