import CGatewardenABI
import GatewardenCore
import GatewardenKernel

/// A source or subnet the XDP program dropped for rate, with its exact drop count.
public struct RateOffender: Sendable, Hashable {
    public enum Kind: Sendable, Hashable { case source, subnet }
    /// A source as /32 (/128); a subnet at the policy's prefix length.
    public let prefix: AddressPrefix
    public let kind: Kind
    /// Packets dropped (or, in observe mode, that would have been) for rate since its bucket was made.
    public let droppedPackets: UInt64
}

extension XDPMaps {
    /// Every offender the program registered whose bucket is still tracked, with its exact count.
    /// Cost: one walk of the offenders map and one bucket lookup per offender (never the million
    /// tracked sources).
    public func rateOffenders() throws -> [RateOffender] {
        let limits = try limits()
        var keys: [gw_offender_key] = []
        try forEachOffender { key, _ in keys.append(key) }
        return try keys.compactMap { key in
            guard let dropped = try droppedPackets(of: key), dropped > 0 else { return nil }
            let subnet = key.kind == GW_OFFENDER_SUBNET.rawValue
            var lpm = gw_lpm_key()
            lpm.addr = key.addr.bytes
            lpm.prefixlen = 128
            let address = AddressPrefix(lpmKey: lpm)
            guard subnet else { return RateOffender(prefix: address, kind: .source, droppedPackets: dropped) }
            let length = address.isIPv4 ? limits?.ipv4SubnetPrefix ?? 24 : limits?.ipv6SubnetPrefix ?? 64
            return RateOffender(prefix: address.widened(to: length), kind: .subnet, droppedPackets: dropped)
        }
    }
}
