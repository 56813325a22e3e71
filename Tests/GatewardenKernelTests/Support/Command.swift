import Foundation
import Testing

/// Runs a program to completion and captures what it printed.
struct Command {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    struct Failure: Error, CustomStringConvertible {
        let command: [String]
        let result: Result
        var description: String {
            "\(command.joined(separator: " ")) exited \(result.status): \(result.stderr)\(result.stdout)"
        }
    }

    /// Runs `arguments[0]` (looked up in PATH) with the rest as arguments.
    @discardableResult
    static func run(_ arguments: [String], check: Bool = true) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read before waiting: a full pipe would block the child.
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let result = Result(status: process.terminationStatus,
                            stdout: String(decoding: stdout, as: UTF8.self),
                            stderr: String(decoding: stderr, as: UTF8.self))
        if check && result.status != 0 { throw Failure(command: arguments, result: result) }
        return result
    }
}

/// Kernel tests create namespaces, load BPF and change nftables: they need root.
enum Privileges {
    static let isRoot = getuid() == 0
    static let reason: Comment = "needs root: creates network namespaces, loads BPF programs and nftables tables (run as root; CI does)"
}
