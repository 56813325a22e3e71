import CGatewardenABI
#if canImport(Glibc)
import Glibc
#endif

/// One interface's Gatewarden XDP state, read from its pins in the host's bpffs.
///
/// Readers open the pins afresh for every read, so a reload (which reuses the maps) or an
/// unload (which removes them) is seen at once, and the exporter holds nothing open.
///
///     let instance = XDPInstance(layout: PinLayout(namespace: lab, interface: "veth0"))
///     for entry in try instance.statistics() where entry.counter.packets > 0 { print(entry) }
public struct XDPInstance: Sendable {
    /// Map names in bpf/gatewarden_xdp.c.
    public enum MapName {
        public static let statistics = "gw_stats"
        public static let sources = "gw_sources"
        public static let ports = "gw_ports"
        public static let loader = "gw_loader"
    }

    /// A counter of the statistics array with its action and reason names.
    public struct Statistic: Sendable, Equatable {
        public var action: String
        public var reason: String
        public var packets: UInt64
        public var bytes: UInt64
    }

    /// `enum gw_action` names, by value.
    public static let actionNames = ["pass", "drop"]
    /// `enum gw_reason` names, by value; the `reason` label of `gatewarden_xdp_packets_total`.
    public static let reasonNames = [
        "within_limit", "unprotected", "not_ip", "malformed",
        "allowlist", "blocklist", "rate_ip", "rate_subnet",
    ]

    public let layout: PinLayout

    public init(layout: PinLayout) {
        precondition(Self.actionNames.count == Int(GW_ACTION_COUNT.rawValue), "gw_action names out of date")
        precondition(Self.reasonNames.count == Int(GW_REASON_COUNT.rawValue), "gw_reason names out of date")
        self.layout = layout
    }

    public var link: XDPLink { XDPLink(pinPath: layout.link) }

    public func map(_ name: String) throws -> BPFMap {
        try BPFMap(pinnedAt: layout.map(name))
    }

    /// Every (action, reason) counter, summed over CPUs.
    public func statistics() throws -> [Statistic] {
        let map = try map(MapName.statistics)
        var result: [Statistic] = []
        for action in 0..<Self.actionNames.count {
            for reason in 0..<Self.reasonNames.count {
                let index = UInt32(action * Self.reasonNames.count + reason)
                let perCPU = try map.perCPUValues(at: index, as: gw_counter.self) ?? []
                result.append(Statistic(
                    action: Self.actionNames[action], reason: Self.reasonNames[reason],
                    packets: perCPU.reduce(0) { $0 &+ $1.packets },
                    bytes: perCPU.reduce(0) { $0 &+ $1.bytes }))
            }
        }
        return result
    }

    /// What the loader recorded at the last attach, or nil before the first.
    public func loaderInfo() throws -> gw_loader_info? {
        let info = try map(MapName.loader).value(at: UInt32(0), as: gw_loader_info.self)
        return info.flatMap { $0.abi_version == 0 ? nil : $0 }
    }

    /// The mode recorded at attach, as `XDPMode`.
    public func mode() throws -> XDPMode? {
        switch try loaderInfo()?.xdp_mode {
        case GW_XDP_MODE_NATIVE.rawValue: return .native
        case GW_XDP_MODE_GENERIC.rawValue: return .generic
        default: return nil
        }
    }

    /// Packets and bytes counted for one source address (IPv4 given as 4 bytes, IPv6 as 16).
    public func sourceCounter(address: [UInt8]) throws -> gw_counter? {
        let key = SourceKey(address: address).raw
        let perCPU = try map(MapName.sources).perCPUValues(at: key, as: gw_counter.self)
        return perCPU.map { values in
            gw_counter(packets: values.reduce(0) { $0 &+ $1.packets }, bytes: values.reduce(0) { $0 &+ $1.bytes })
        }
    }
}

/// The map key of a source address: IPv6 as is, IPv4 mapped into ::ffff:0:0/96.
public struct SourceKey: Sendable {
    public var raw: gw_source_key

    public init(address: [UInt8]) {
        precondition(address.count == 4 || address.count == 16, "an address has 4 or 16 bytes")
        var bytes = [UInt8](repeating: 0, count: 16)
        if address.count == 4 {
            bytes[10] = 0xff
            bytes[11] = 0xff
            bytes.replaceSubrange(12..<16, with: address)
        } else {
            bytes = address
        }
        var key = gw_source_key()
        withUnsafeMutableBytes(of: &key.addr) { $0.copyBytes(from: bytes) }
        raw = key
    }
}
