// swift-tools-version:6.0
import PackageDescription

// Vector width of the hand-written kernels: on x86-64 they are built for AVX2 + FMA (Haswell,
// 2013, and every later x86 server) unless SFKD_TARGET_CPU names another LLVM CPU, e.g.
// `native` for the build machine or `x86-64` for CPUs without AVX2. Other architectures use
// the compiler's default.
#if arch(x86_64)
    let targetCPU = ["-target-cpu", Context.environment["SFKD_TARGET_CPU"] ?? "haswell"]
#else
    let targetCPU = Context.environment["SFKD_TARGET_CPU"].map { ["-target-cpu", $0] } ?? []
#endif

// A Haswell build fuses multiply-adds in the attention kernels (SFKD_FMA), and stops with a
// message on a CPU without AVX2 and FMA instead of dying of SIGILL.
let haswell = targetCPU == ["-target-cpu", "haswell"]
let fusedMultiplyAdd: [SwiftSetting] = haswell ? [.define("SFKD_FMA", .when(configuration: .release))] : []
let cpuCheck: [SwiftSetting] = haswell ? [.define("SFKD_REQUIRES_AVX2", .when(configuration: .release))] : []

// Release builds drop bounds and exclusivity checks in the numeric kernels: they run on raw
// pointers whose extents the ops check once per call, not per element.
let fastMath: [SwiftSetting] =
    [
        .unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked"] + targetCPU, .when(configuration: .release))
    ] + fusedMultiplyAdd

let package = Package(
    name: "sfkd",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "sfkd", targets: ["sfkd"]),
        .library(name: "Tensors", targets: ["Tensors"]),
        .library(name: "Layers", targets: ["Layers"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CFFTW", pkgConfig: "fftw3f", providers: [.apt(["libfftw3-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CVector"),

        // The vocabulary every layer speaks: declared settings and the user-facing error.
        .target(name: "Settings"),
        .target(name: "Tensors", dependencies: ["CBLAS", "CDNNL", "CVector"], swiftSettings: fastMath),
        .target(name: "Layers", dependencies: ["Tensors"], swiftSettings: fastMath),
        .target(name: "Models", dependencies: ["Settings", "Layers", "Tensors"], swiftSettings: fastMath),
        // Model files: safetensors, metadata, import of timm's weights, checkpoint filters, position-embedding resampling.
        .target(
            name: "ModelFiles", dependencies: ["Settings", "Tensors", "Layers", "Models", "Data"],
            swiftSettings: fastMath),
        .target(name: "Spectral", dependencies: ["Tensors", "CFFTW"], swiftSettings: fastMath),
        .target(
            name: "Data", dependencies: ["Settings", "Tensors", "CZlib", "CTurboJPEG", "CPNG"], swiftSettings: fastMath),
        .target(
            name: "Distill", dependencies: ["Settings", "Tensors", "Layers", "Models", "Spectral"],
            exclude: ["README.md"],
            swiftSettings: fastMath
        ),
        .target(
            name: "Training",
            dependencies: [
                "Settings", "Tensors", "Layers", "Models", "ModelFiles", "Data", "Distill", "Cluster",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: fastMath
        ),
        .target(name: "Cluster", dependencies: ["CMPI", "Settings", "Tensors"], swiftSettings: fastMath),
        .executableTarget(
            name: "sfkd",
            dependencies: [
                "Settings", "Tensors", "Layers", "Models", "ModelFiles", "Data", "Distill", "Training", "Cluster",
                "CFFTW", "CZlib", "CTurboJPEG", "CPNG",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: fastMath + cpuCheck
        ),

        // Shared by the test targets: random tensors, the gradient checker, bounded child processes.
        .target(name: "TestSupport", dependencies: ["Tensors"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "TestSupport"]),
        .testTarget(name: "LayersTests", dependencies: ["Layers", "Tensors", "TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Layers", "Tensors", "TestSupport"]),
        .testTarget(name: "SpectralTests", dependencies: ["Spectral", "Tensors", "TestSupport"]),
        .testTarget(name: "DataTests", dependencies: ["Data", "Settings", "Tensors", "TestSupport"]),
        .testTarget(
            name: "DistillTests",
            dependencies: ["Distill", "Settings", "Spectral", "Models", "Data", "Layers", "Tensors", "TestSupport"]
        ),
        .testTarget(
            name: "TrainingTests",
            dependencies: [
                "Training", "ModelFiles", "Settings", "Distill", "Models", "Data", "Layers", "Tensors", "TestSupport",
            ]
        ),
        .testTarget(
            name: "ClusterTests",
            dependencies: ["sfkd", "Cluster", "Distill", "ModelFiles", "Tensors", "Layers", "Training", "TestSupport"]
        ),
        .testTarget(
            name: "CLITests", dependencies: ["sfkd", "Training", "ModelFiles", "Models", "Tensors", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
