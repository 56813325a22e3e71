import CGatewardenABI
import CLibBPF
import GatewardenCore
import GatewardenKernel
#if canImport(Glibc)
import Glibc
#endif

/// The per-source and per-subnet buckets, and the offenders dropped for rate.
extension XDPMaps {
    /// Entries in an LRU map: inserts since the maps were created, capped at capacity. Buckets are
    /// never deleted, only evicted when a map is full, so this is exact until the map first fills.
    public func entries(of map: BPFMap) throws -> Int {
        let counter: gw_insert_counter
        switch map.info.name {
        case Name.sources: counter = GW_INSERTS_SOURCES
        case Name.subnets: counter = GW_INSERTS_SUBNETS
        case Name.offenders: counter = GW_INSERTS_OFFENDERS
        default: throw KernelError(operation: "map \(map.info.name) has no insert counter")
        }
        let perCPU = try inserts.perCPUValues(at: counter.rawValue, as: UInt64.self) ?? []
        return Int(min(perCPU.reduce(0, &+), UInt64(map.info.maxEntries)))
    }

    /// Every registered offender with its power-of-two bound `r` (its count c has r <= c < 2r).
    public func forEachOffender(_ body: (gw_offender_key, UInt64) -> Void) throws {
        try offenders.forEachEntry(keyType: gw_offender_key.self, valueType: UInt64.self, batchSize: 8192) { key, value in
            body(key, value[0])
        }
    }

    /// The exact count of packets dropped for rate from an offender, from its bucket
    /// (nil once the bucket was evicted).
    public func droppedPackets(of offender: gw_offender_key) throws -> UInt64? {
        let map = offender.kind == GW_OFFENDER_SUBNET.rawValue ? subnets : sources
        return try map.value(at: offender.addr, as: gw_bucket.self)?.dropped_packets
    }

    /// Packets dropped for rate from one source (4 or 16 bytes) or subnet (its network address).
    public func droppedPackets(address: [UInt8], subnet: Bool = false) throws -> UInt64? {
        try (subnet ? subnets : sources).value(at: Self.key(address: address), as: gw_bucket.self)
            .flatMap { $0.dropped_packets > 0 ? $0.dropped_packets : nil }
    }

    /// The bucket of one source address (4 or 16 bytes), if the program has seen it.
    public func sourceBucket(address: [UInt8]) throws -> gw_bucket? {
        try sources.value(at: Self.key(address: address), as: gw_bucket.self)
    }

    /// The map key of an address: IPv6 as is, IPv4 (4 bytes) mapped into ::ffff:0:0/96.
    public static func key(address: [UInt8]) -> gw_addr {
        precondition(address.count == 4 || address.count == 16, "an address has 4 or 16 bytes")
        let mapped = address.count == 16 ? address : [UInt8](repeating: 0, count: 10) + [0xff, 0xff] + address
        var key = gw_addr()
        withUnsafeMutableBytes(of: &key.bytes) { $0.copyBytes(from: mapped) }
        return key
    }
}
