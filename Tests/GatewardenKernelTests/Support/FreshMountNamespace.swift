import Foundation

/// Runs commands one after another in a new private mount namespace (`unshare -m`) in which
/// /sys/fs/bpf starts unmounted, as on a fresh machine, whatever the host has mounted there.
///
/// Every command sees the mounts the earlier ones made (a bpffs `load` mounted, and its pins);
/// the test's own mount namespace never does. When the last command exits the namespace is
/// gone, and with it any bpffs mounted in it and the pins on it (their XDP links detach), so
/// nothing outlives a failed test but what lives in network namespaces, which the lab removes.
///
///     let steps = try FreshMountNamespace.run([[GatewardenBinary.path, "load", "-i", "gw0", "--netns", ns]])
///     #expect(steps[0].status == 0)
enum FreshMountNamespace {
    struct Step {
        var arguments: [String]
        var status: Int32
        var stdout: String
        var stderr: String
    }

    struct SetupFailure: Error, CustomStringConvertible {
        let result: Command.Result
        var description: String { "could not prepare a mount namespace without bpffs: \(result.stderr)\(result.stdout)" }
    }

    static func run(_ commands: [[String]]) throws -> [Step] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-fresh-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        // bpffs may be mounted more than once on top of itself: unmount until none is left.
        var script = "while mountpoint -q /sys/fs/bpf; do umount /sys/fs/bpf || exit 1; done\n"
        for (index, command) in commands.enumerated() {
            let file = directory.appendingPathComponent("\(index)").path
            script += command.map(quoted).joined(separator: " ")
                + " </dev/null >\(quoted(file)).out 2>\(quoted(file)).err; echo $? >\(quoted(file)).status\n"
        }
        let setup = try Command.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], check: false)
        guard setup.status == 0 else { throw SetupFailure(result: setup) }

        return try commands.enumerated().map { index, command in
            let file = directory.appendingPathComponent("\(index)").path
            func read(_ suffix: String) throws -> String { try String(contentsOfFile: file + suffix, encoding: .utf8) }
            return Step(arguments: command,
                        status: Int32(try read(".status").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1,
                        stdout: try read(".out"), stderr: try read(".err"))
        }
    }

    private static func quoted(_ argument: String) -> String {
        "'" + argument.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }
}
