import Foundation
import PackagePlugin

/// Compiles every `bpf/*.c` of the package into BPF bytecode and embeds it in the target
/// as generated Swift, so the `gatewarden` binary needs no compiler or object file at run time.
/// The benchmark target gets `bpf/bench/*.c` instead, so baselines never ship in the binary.
///
/// The list of programs is read when SwiftPM plans the build: a new file under `bpf/`
/// is seen after `touch Package.swift`.
@main
struct BPFBuildPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let headerDirectory = context.package.directoryURL.appending(path: "bpf")
        let isBenchmark = target.name == "GatewardenBenchBPF"
        let bpfDirectory = isBenchmark ? headerDirectory.appending(path: "bench") : headerDirectory
        let headers = try FileManager.default.contentsOfDirectory(atPath: headerDirectory.path)
            .filter { $0.hasSuffix(".h") }.map { headerDirectory.appending(path: $0) }
        let programs = try FileManager.default.contentsOfDirectory(atPath: bpfDirectory.path)
            .filter { $0.hasSuffix(".c") }.sorted()
        let compiler = try context.tool(named: "gatewarden-bpfc").url
        let clang = try context.tool(named: "clang").url

        return programs.map { file in
            let source = bpfDirectory.appending(path: file)
            let stem = String(file.dropLast(2))
            let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedBPF+\(stem).swift")
            return .buildCommand(
                displayName: "Compiling BPF program \(file)",
                executable: compiler,
                arguments: [
                    "--clang", clang.path,
                    "--include", headerDirectory.path,
                    "--source", source.path,
                    "--output", output.path,
                ] + (isBenchmark ? ["--import", "GatewardenBPF"] : []),
                inputFiles: [source] + headers,
                outputFiles: [output]
            )
        }
    }
}
