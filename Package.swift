// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Gatewarden",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "gatewarden", targets: ["gatewarden"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // MARK: System libraries (found through pkg-config; Debian's -dev packages)
        .systemLibrary(name: "CLibBPF", pkgConfig: "libbpf",
                       providers: [.apt(["libbpf-dev"])]),
        .systemLibrary(name: "CNFTables", pkgConfig: "libnftables",
                       providers: [.apt(["libnftables-dev"])]),
        .systemLibrary(name: "CMicroHTTPD", pkgConfig: "libmicrohttpd",
                       providers: [.apt(["libmicrohttpd-dev"])]),
        // The map keys and values shared with the kernel program (bpf/gatewarden_abi.h),
        // so the Swift side and the C side can never disagree on a layout.
        .systemLibrary(name: "CGatewardenABI"),
        .systemLibrary(name: "CLinux"),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CCrypt", pkgConfig: "libcrypt", providers: [.apt(["libcrypt-dev"])]),

        // MARK: The kernel program, compiled from bpf/*.c and embedded in the binary
        .executableTarget(name: "gatewarden-bpfc"),
        .plugin(name: "BPFBuildPlugin", capability: .buildTool(),
                dependencies: ["gatewarden-bpfc"]),
        .target(name: "GatewardenBPF", plugins: ["BPFBuildPlugin"]),
        .target(name: "GatewardenBenchBPF", dependencies: ["GatewardenBPF"], plugins: ["BPFBuildPlugin"]),

        // MARK: Libraries, one idea each; arrows go CLI → Exporter/Policy → Kernel → C
        .target(name: "GatewardenKernel",
                dependencies: ["CLibBPF", "CNFTables", "CGatewardenABI", "CLinux"]),
        .target(name: "GatewardenYAML", dependencies: ["Yams"]),
        .target(name: "GatewardenPolicy", dependencies: ["GatewardenKernel", "GatewardenYAML", "Yams"]),
        .target(name: "GatewardenExporter",
                dependencies: ["GatewardenKernel", "CMicroHTTPD", "CZlib", "CCrypt", "CLinux", "GatewardenYAML", "Yams"]),

        // MARK: The command
        .executableTarget(name: "gatewarden",
                          dependencies: [
                              "GatewardenBPF", "GatewardenKernel", "GatewardenPolicy", "GatewardenExporter",
                              .product(name: "ArgumentParser", package: "swift-argument-parser"),
                          ]),

        // MARK: Benchmarks (print figures; never timed tests)
        .executableTarget(name: "gatewarden-bench",
                          dependencies: ["GatewardenBenchBPF", "GatewardenKernel"]),
        .executableTarget(name: "gatewarden-list-bench",
                          dependencies: ["GatewardenBPF", "GatewardenKernel", "GatewardenPolicy"]),
        .executableTarget(name: "gatewarden-scrape-bench",
                          dependencies: ["GatewardenKernel", "CGatewardenABI"]),

        // MARK: Fuzzing: generated broken policies and web configs through the parsers and renderers
        .executableTarget(name: "gatewarden-fuzz",
                          dependencies: ["GatewardenPolicy", "GatewardenExporter", "GatewardenKernel", "GatewardenTestSupport"]),

        // MARK: Tests
        .testTarget(name: "GatewardenExporterTests", dependencies: ["GatewardenExporter"]),
        .target(name: "GatewardenTestSupport", path: "Tests/GatewardenTestSupport"),
        .testTarget(name: "GatewardenPolicyTests", dependencies: ["GatewardenPolicy", "GatewardenTestSupport"]),
        .testTarget(name: "GatewardenKernelTests",
                    dependencies: ["GatewardenKernel", "GatewardenPolicy", "GatewardenBPF", "CLinux", "GatewardenTestSupport", "gatewarden"]),
    ],
    swiftLanguageModes: [.v6]
)
