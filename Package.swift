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
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
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

        // MARK: Libraries, one job each. Arrows go one way:
        //   CLI -> Load / Serve / Enforce -> Policy / DataPlane -> Kernel -> C modules, Core under all of them.
        // Pure values: prefixes, rates, durations, problems, bans.
        .target(name: "GatewardenCore"),
        // Thin Swift over libbpf, libnftables, namespaces, bpffs, sysctls: no Gatewarden policy in here.
        .target(name: "GatewardenKernel",
                dependencies: ["GatewardenCore", "CLibBPF", "CNFTables", "CGatewardenABI", "CLinux"]),
        // Gatewarden's own kernel state: the XDP maps by concern, pins, the change lock, ban sinks per layer.
        .target(name: "GatewardenDataPlane",
                dependencies: ["GatewardenCore", "GatewardenKernel", "CGatewardenABI", "CLibBPF"]),
        .target(name: "GatewardenYAML", dependencies: ["Yams"]),
        // YAML -> Policy -> nftables ruleset + XDP limits.
        .target(name: "GatewardenPolicy",
                dependencies: ["GatewardenCore", "GatewardenKernel", "GatewardenDataPlane", "GatewardenYAML", "Yams"]),
        // Install, re-apply, roll back, remove.
        .target(name: "GatewardenLoad",
                dependencies: ["GatewardenCore", "GatewardenKernel", "GatewardenDataPlane", "GatewardenPolicy", "GatewardenBPF",
                               "CGatewardenABI"]),
        // The Prometheus exporter: collectors, exposition, HTTP.
        .target(name: "GatewardenServe",
                dependencies: ["GatewardenCore", "GatewardenKernel", "GatewardenDataPlane", "CGatewardenABI", "CMicroHTTPD", "CZlib", "CCrypt",
                               "CLinux", "GatewardenYAML", "Yams"]),

        // The enforce loop: violators -> bans in both layers, remembered in SQLite.
        // It reports through the exporter's collector interface (its one arrow to a sibling).
        .target(name: "GatewardenEnforce",
                dependencies: ["GatewardenCore", "GatewardenKernel", "GatewardenDataPlane", "GatewardenPolicy", "GatewardenLoad",
                               "GatewardenServe", "CGatewardenABI",
                               .product(name: "GRDB", package: "GRDB.swift")]),

        // MARK: The command
        .executableTarget(name: "gatewarden",
                          dependencies: [
                              "GatewardenCore", "GatewardenKernel", "GatewardenDataPlane", "GatewardenPolicy",
                              "GatewardenLoad", "GatewardenServe", "GatewardenEnforce",
                              .product(name: "ArgumentParser", package: "swift-argument-parser"),
                          ]),

        // MARK: Benchmarks (print figures; never timed tests)
        .executableTarget(name: "gatewarden-bench",
                          dependencies: ["GatewardenBenchBPF", "GatewardenCore", "GatewardenKernel", "GatewardenDataPlane"]),
        .executableTarget(name: "gatewarden-list-bench",
                          dependencies: ["GatewardenBPF", "GatewardenCore", "GatewardenKernel", "GatewardenDataPlane", "GatewardenPolicy"]),
        .executableTarget(name: "gatewarden-feed-bench", dependencies: ["GatewardenCore", "GatewardenPolicy", "GatewardenEnforce"]),
        .executableTarget(name: "gatewarden-ban-bench",
                          dependencies: ["GatewardenCore", "GatewardenKernel", "GatewardenDataPlane"]),
        .executableTarget(name: "gatewarden-scrape-bench",
                          dependencies: ["GatewardenCore", "GatewardenKernel", "GatewardenDataPlane", "CGatewardenABI"]),
        .executableTarget(name: "gatewarden-store-bench", dependencies: ["GatewardenEnforce", "GatewardenCore", "GatewardenPolicy"]),

        // MARK: Fuzzing: generated broken policies and web configs through the parsers and renderers
        .executableTarget(name: "gatewarden-fuzz",
                          dependencies: ["GatewardenCore", "GatewardenPolicy", "GatewardenServe", "GatewardenKernel", "GatewardenTestSupport"]),

        // MARK: Tests
        .testTarget(name: "GatewardenServeTests", dependencies: ["GatewardenServe", "GatewardenCore"]),
        .testTarget(name: "GatewardenCoreTests", dependencies: ["GatewardenCore"]),
        .testTarget(name: "GatewardenEnforceTests", dependencies: ["GatewardenEnforce", "GatewardenCore", "GatewardenPolicy",
                                                                  .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "GatewardenDataPlaneTests", dependencies: ["GatewardenDataPlane", "GatewardenCore", "CGatewardenABI"]),
        .target(name: "GatewardenTestSupport", path: "Tests/GatewardenTestSupport"),
        .testTarget(name: "GatewardenPolicyTests", dependencies: ["GatewardenPolicy", "GatewardenCore", "GatewardenDataPlane", "GatewardenTestSupport"]),
        .testTarget(name: "GatewardenKernelTests",
                    dependencies: ["GatewardenCore", "GatewardenKernel", "GatewardenDataPlane", "GatewardenPolicy", "GatewardenLoad",
                                   "GatewardenBPF", "GatewardenBenchBPF", "GatewardenEnforce", "CLinux", "GatewardenTestSupport", "gatewarden"]),
    ],
    swiftLanguageModes: [.v6]
)
