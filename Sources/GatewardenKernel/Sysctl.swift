import Foundation

/// Kernel settings under /proc/sys, in a network namespace: files under /proc/sys/net show (and
/// change) the namespace of the thread that opens them, so both run inside `perform`.
///
///     let loose = try Sysctl.read("net/netfilter/nf_conntrack_tcp_loose", in: namespace)   // "1"
///     try Sysctl.write("net/netfilter/nf_conntrack_tcp_loose", "0", in: namespace)
public enum Sysctl {
    public static func path(_ name: String) -> String { "/proc/sys/\(name)" }

    /// The setting's text without its trailing newline, or nil when it does not exist (a module not loaded).
    public static func read(_ name: String, in namespace: NetworkNamespace = .current) throws -> String? {
        try namespace.perform {
            (try? String(contentsOfFile: path(name), encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// The setting's whitespace-separated numbers (`net.ipv4.tcp_rmem` has three), or nil.
    public static func integers(_ name: String, in namespace: NetworkNamespace = .current) throws -> [Int]? {
        try read(name, in: namespace).map { $0.split(whereSeparator: \.isWhitespace).compactMap { Int($0) } }
    }

    public static func write(_ name: String, _ value: String, in namespace: NetworkNamespace = .current) throws {
        try namespace.perform {
            guard let handle = FileHandle(forWritingAtPath: path(name)) else {
                throw KernelError.fromErrno("open \(path(name)) in \(namespace)")
            }
            defer { try? handle.close() }
            do {
                try handle.write(contentsOf: Data(value.utf8))
            } catch {
                throw KernelError(operation: "set \(name) to \(value) in \(namespace): \(error)")
            }
        }
    }
}
