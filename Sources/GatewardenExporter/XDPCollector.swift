import GatewardenKernel

/// Reads every Gatewarden XDP instance pinned for the served namespace: whether it is attached
/// and in which mode, and its per-action, per-reason packet and byte counters (per-CPU summed).
public struct XDPCollector: Collector {
    public let name = "xdp"
    public let namespace: NetworkNamespace
    public let pinRoot: String

    public init(namespace: NetworkNamespace, pinRoot: String = PinLayout.defaultRoot) {
        self.namespace = namespace
        self.pinRoot = pinRoot
    }

    public func collect() throws -> [MetricFamily] {
        var attached = MetricFamily(name: "gatewarden_xdp_attached",
                                    help: "Whether Gatewarden's XDP program is attached to the interface (1) or not (0).",
                                    type: .gauge)
        var packets = MetricFamily(name: "gatewarden_xdp_packets_total",
                                   help: "Packets seen by the XDP program, by action and reason.", type: .counter)
        var bytes = MetricFamily(name: "gatewarden_xdp_bytes_total",
                                 help: "Bytes seen by the XDP program, by action and reason.", type: .counter)
        var capacity = MetricFamily(name: "gatewarden_xdp_map_capacity",
                                    help: "Maximum entries of an XDP map.", type: .gauge)

        for interface in PinLayout.interfaces(root: pinRoot, namespace: namespace) {
            let instance = XDPInstance(layout: PinLayout(root: pinRoot, namespace: namespace, interface: interface))
            let linkInfo = try? instance.link.info()
            let mode = (try? instance.mode())??.rawValue ?? "unknown"
            attached.add(["interface": interface, "mode": mode], (linkInfo?.interfaceIndex ?? 0) != 0 ? 1 : 0)

            let maps = try instance.maps()
            for statistic in try maps.readStatistics() {
                let labels: KeyValuePairs = ["interface": interface, "action": statistic.action, "reason": statistic.reason]
                packets.add(labels, Double(statistic.packets))
                bytes.add(labels, Double(statistic.bytes))
            }
            for map in [maps.sources, maps.subnets, maps.allowlist, maps.blocklist] {
                capacity.add(["interface": interface, "map": map.info.name], Double(map.info.maxEntries))
            }
        }
        return [attached, packets, bytes, capacity]
    }
}
