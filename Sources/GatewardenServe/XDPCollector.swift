import CGatewardenABI
import Foundation
import GatewardenKernel
import GatewardenCore
import GatewardenDataPlane

/// Reads every Gatewarden XDP instance pinned for the served namespace: attachment and mode,
/// per-action/per-reason counters (per-CPU summed), map fill, blocklist size, and the top
/// offending sources and subnets by drops, at most `topK` of each whatever the maps hold.
public struct XDPCollector: Collector {
    public let name = "xdp"
    public let namespace: NetworkNamespace
    public let pinRoot: String
    public let topK: Int

    public init(namespace: NetworkNamespace, pinRoot: String = PinLayout.defaultRoot, topK: Int = 20) {
        self.namespace = namespace
        self.pinRoot = pinRoot
        self.topK = topK
    }

    private struct Families {
        var attached = MetricFamily(name: "gatewarden_xdp_attached",
                                    help: "Whether Gatewarden's XDP program is attached to the interface (1) or not (0), by the mode it runs in.",
                                    type: .gauge)
        var requested = MetricFamily(name: "gatewarden_xdp_requested_mode",
                                     help: "The XDP mode the operator asked for at load (native, generic or auto); always 1.",
                                     type: .gauge)
        var enforcement = MetricFamily(name: "gatewarden_xdp_enforcement_mode",
                                       help: "Whether the XDP rate limits drop (enforce) or only count would_drop (observe); always 1.",
                                       type: .gauge)
        var packets = MetricFamily(name: "gatewarden_xdp_packets_total",
                                   help: "Packets seen by the XDP program, by action (pass, drop, would_drop: observe mode, syncookie: a SYN answered in XDP) and reason.",
                                   type: .counter)
        var bytes = MetricFamily(name: "gatewarden_xdp_bytes_total",
                                 help: "Bytes seen by the XDP program, by action and reason.", type: .counter)
        var entries = MetricFamily(name: "gatewarden_xdp_map_entries",
                                   help: "Entries in an XDP map.", type: .gauge)
        var capacity = MetricFamily(name: "gatewarden_xdp_map_capacity",
                                    help: "Maximum entries of an XDP map.", type: .gauge)
        var blocklist = MetricFamily(name: "gatewarden_blocklist_entries",
                                     help: "Bans in force (not expired) in a blocklist, by address family and enforcing layer.", type: .gauge)
        var top = MetricFamily(name: "gatewarden_top_source_dropped_packets",
                               help: "Packets dropped (in observe mode: would have been dropped) for rate from the top offending sources and subnets (bounded to the top K).",
                               type: .gauge)

        var all: [MetricFamily] { [attached, requested, enforcement, packets, bytes, entries, capacity, blocklist, top] }
    }

    public func collect() throws -> [MetricFamily] {
        var families = Families()
        for interface in PinLayout.interfaces(root: pinRoot, namespace: namespace) {
            let layout = PinLayout(root: pinRoot, namespace: namespace, interface: interface)
            do {
                try collect(XDPInstance(layout: layout), interface: interface, into: &families)
            } catch let error as KernelError where error.errno == ENOENT && !FileManager.default.fileExists(atPath: layout.directory) {
                continue // unloaded while this scrape ran: the instance is gone, nothing failed
            }
        }
        return families.all
    }

    private func collect(_ instance: XDPInstance, interface: String, into families: inout Families) throws {
        let maps = try instance.maps()
        let loader = try maps.loaderInfo()
        let linkInfo = try? instance.link.info()
        let mode = loader.flatMap { XDPMode(abiValue: $0.xdp_mode) }?.rawValue ?? "unknown"
        families.attached.add(["interface": interface, "mode": mode], (linkInfo?.interfaceIndex ?? 0) != 0 ? 1 : 0)
        if let loader {
            families.requested.add(["interface": interface, "mode": Self.requestedModeName(loader.requested_mode)], 1)
        }

        for statistic in try maps.readStatistics() {
            let labels: KeyValuePairs = ["interface": interface, "action": statistic.action, "reason": statistic.reason]
            families.packets.add(labels, Double(statistic.packets))
            families.bytes.add(labels, Double(statistic.bytes))
        }

        let limits = try maps.limits()
        if let limits {
            families.enforcement.add(["interface": interface, "mode": limits.observe ? "observe" : "enforce"], 1)
        }
        for map in [maps.sources, maps.subnets, maps.offenders] {
            families.entries.add(["interface": interface, "map": map.info.name], Double(try maps.entries(of: map)))
            families.capacity.add(["interface": interface, "map": map.info.name], Double(map.info.maxEntries))
        }
        for offender in try topOffenders(maps) {
            let address = AddressPrefix.addressText(of: offender.item.addr)
            let prefix = offender.item.kind == GW_OFFENDER_SUBNET.rawValue
                ? (address.isIPv4 ? limits?.ipv4SubnetPrefix ?? 24 : limits?.ipv6SubnetPrefix ?? 64)
                : (address.isIPv4 ? 32 : 128)
            families.top.add(["interface": interface, "source": address.text, "prefix": String(prefix)], Double(offender.value))
        }

        for list in [maps.allowlist, maps.blocklist] {
            let counts = try maps.listEntries(list)
            families.entries.add(["interface": interface, "map": list.info.name], Double(counts.ipv4 + counts.ipv6))
            families.capacity.add(["interface": interface, "map": list.info.name], Double(list.info.maxEntries))
        }
        let bans = try maps.bansInForce()
        families.blocklist.add(["interface": interface, "family": "ipv4", "layer": "xdp"], Double(bans.ipv4))
        families.blocklist.add(["interface": interface, "family": "ipv6", "layer": "xdp"], Double(bans.ipv6))
    }

    /// The top K offenders by exact drop count.
    ///
    /// The walk covers gw_offenders only (bounded by its capacity, not by the sources tracked).
    /// Each entry's value r bounds its count c by r <= c < 2r; with R the K-th largest r, every true
    /// top-K offender has r >= R, so only those candidates' buckets are read for exact counts.
    func topOffenders(_ maps: XDPMaps) throws -> [(item: gw_offender_key, value: UInt64)] {
        var registered: [(key: gw_offender_key, bound: UInt64)] = []
        var bounds = TopK<Int>(k: topK)
        try maps.forEachOffender { key, bound in
            registered.append((key, bound))
            bounds.offer(0, bound)
        }
        let threshold = bounds.sorted.last?.value ?? 0
        var top = TopK<gw_offender_key>(k: topK)
        for candidate in registered where candidate.bound >= threshold {
            top.offer(candidate.key, try maps.droppedPackets(of: candidate.key) ?? candidate.bound)
        }
        return top.sorted
    }

    static func requestedModeName(_ value: UInt32) -> String {
        switch value {
        case GW_XDP_MODE_AUTO.rawValue: return "auto"
        default: return XDPMode(abiValue: value)?.rawValue ?? "unknown"
        }
    }
}
