import Foundation
import GatewardenKernel

/// Connection tracking use in the served namespace: entries and the table's limit.
///
/// Both come from /proc/sys/net/netfilter, which shows the namespace of the thread that opens
/// it. Without the nf_conntrack module there is no table to fill: no samples, and no failure.
public struct ConntrackCollector: Collector {
    public let name = "conntrack"
    public let namespace: NetworkNamespace

    public init(namespace: NetworkNamespace) {
        self.namespace = namespace
    }

    public func collect() throws -> [MetricFamily] {
        var entries = MetricFamily(name: "gatewarden_conntrack_entries",
                                   help: "Connections in the conntrack table.", type: .gauge)
        var limit = MetricFamily(name: "gatewarden_conntrack_limit",
                                 help: "The conntrack table's limit (net.netfilter.nf_conntrack_max).", type: .gauge)
        let values = try namespace.perform {
            (Self.read("/proc/sys/net/netfilter/nf_conntrack_count"), Self.read("/proc/sys/net/netfilter/nf_conntrack_max"))
        }
        if let count = values.0, let maximum = values.1 {
            entries.add([:], count)
            limit.add([:], maximum)
        }
        return [entries, limit]
    }

    private static func read(_ path: String) -> Double? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }
}
