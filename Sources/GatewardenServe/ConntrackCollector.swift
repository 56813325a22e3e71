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
        if let count = try Conntrack.count(in: namespace), let maximum = try Conntrack.maximum(in: namespace) {
            entries.add([:], Double(count))
            limit.add([:], Double(maximum))
        }
        return [entries, limit]
    }
}
