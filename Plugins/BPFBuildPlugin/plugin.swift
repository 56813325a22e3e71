import Foundation
import PackagePlugin

/// Compiles every `bpf/*.c` of the package into BPF bytecode and embeds it in the target
/// as generated Swift, so the `gatewarden` binary needs no compiler or object file at run time.
///
/// The list of programs is read when SwiftPM plans the build: a new file under `bpf/`
/// is seen after `touch Package.swift`.
@main
struct BPFBuildPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let bpfDirectory = context.package.directoryURL.appending(path: "bpf")
        let entries = try FileManager.default.contentsOfDirectory(atPath: bpfDirectory.path)
        let headers = entries.filter { $0.hasSuffix(".h") }.map { bpfDirectory.appending(path: $0) }
        let programs = entries.filter { $0.hasSuffix(".c") }.sorted()
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
                    "--include", bpfDirectory.path,
                    "--source", source.path,
                    "--output", output.path,
                ],
                inputFiles: [source] + headers,
                outputFiles: [output]
            )
        }
    }
}
