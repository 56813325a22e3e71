import Foundation

/// The conntrack table's limit and use in a namespace, from /proc/sys/net/netfilter (which shows
/// the namespace of the thread that opens it).
public enum Conntrack {
    /// net.netfilter.nf_conntrack_max, or nil while nf_conntrack is not loaded.
    public static func maximum(in namespace: NetworkNamespace) throws -> Int? {
        try namespace.perform { read("/proc/sys/net/netfilter/nf_conntrack_max") }
    }

    /// net.netfilter.nf_conntrack_count, or nil while nf_conntrack is not loaded.
    public static func count(in namespace: NetworkNamespace) throws -> Int? {
        try namespace.perform { read("/proc/sys/net/netfilter/nf_conntrack_count") }
    }

    private static func read(_ path: String) -> Int? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }
}
