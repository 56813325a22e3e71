import CGatewardenABI
import CLibBPF
#if canImport(Glibc)
import Glibc
import GatewardenCore
import GatewardenKernel
#endif

/// The XDP program's maps, opened either from an instance's pins or from a freshly loaded
/// object (tests run the program through BPF_PROG_TEST_RUN without pinning anything).
///
///     let maps = try XDPMaps(layout: layout)
///     try maps.block(try AddressPrefix("198.51.100.0/24"), for: .seconds(3600))
public struct XDPMaps: Sendable {
    /// Map names in bpf/gatewarden_xdp.c.
    public enum Name {
        public static let statistics = "gw_stats"
        public static let sources = "gw_sources"
        public static let subnets = "gw_subnets"
        public static let offenders = "gw_offenders"
        public static let inserts = "gw_inserts"
        public static let allowlist = "gw_allowlist"
        public static let blocklist = "gw_blocklist"
        public static let config = "gw_config"
        public static let listFilter = "gw_list_filter"
        public static let ports = "gw_ports"
        public static let loader = "gw_loader"
        public static let sightings = "gw_sightings"
        public static let tickTime = "gw_tick_time"

        /// Maps whose contents can be rebuilt or lost without losing protection state: counters,
        /// what `load` writes anyway, and caches. An upgrade that changes one of their layouts may
        /// replace them; the others (lists, buckets, offenders) hold bans and rate state.
        public static let rebuildable: Set<String> = [
            statistics, config, ports, loader, listFilter, tickTime, sightings, inserts, allowlist,
        ]
    }

    /// Room in the list maps (fixed when the maps are created).
    public static let allowlistCapacity = Int(GW_ALLOWLIST_DEFAULT_ENTRIES)
    public static let blocklistCapacity = Int(GW_BLOCKLIST_DEFAULT_ENTRIES)

    /// `enum gw_action` names, by value.
    public static let actionNames = ["pass", "drop", "would_drop", "syncookie"]
    /// `enum gw_reason` names, by value; the `reason` label of `gatewarden_xdp_packets_total`.
    public static let reasonNames = [
        "within_limit", "unprotected", "not_ip", "malformed",
        "allowlist", "blocklist", "rate_ip", "rate_subnet", "unsupported",
    ]

    public let statistics: BPFMap
    public let sources: BPFMap
    public let subnets: BPFMap
    public let offenders: BPFMap
    public let inserts: BPFMap
    public let allowlist: BPFMap
    public let blocklist: BPFMap
    public let config: BPFMap
    public let listFilter: BPFMap
    public let ports: BPFMap
    public let loader: BPFMap

    private init(open: (String) throws -> BPFMap) throws {
        precondition(Self.actionNames.count == Int(GW_ACTION_COUNT.rawValue), "gw_action names out of date")
        precondition(Self.reasonNames.count == Int(GW_REASON_COUNT.rawValue), "gw_reason names out of date")
        statistics = try open(Name.statistics)
        sources = try open(Name.sources)
        subnets = try open(Name.subnets)
        offenders = try open(Name.offenders)
        inserts = try open(Name.inserts)
        allowlist = try open(Name.allowlist)
        blocklist = try open(Name.blocklist)
        config = try open(Name.config)
        listFilter = try open(Name.listFilter)
        ports = try open(Name.ports)
        loader = try open(Name.loader)
    }

    public init(layout: PinLayout) throws {
        try self.init { try BPFMap(pinnedAt: layout.map($0)) }
    }

    public init(object: BPFObject) throws {
        try self.init { try BPFMap(borrowing: object.mapDescriptor(named: $0)) }
    }
}

/// CLOCK_BOOTTIME, the clock of `bpf_ktime_get_boot_ns`: ban expiries count suspended time too.
public enum BootClock {
    public static var nanoseconds: UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_BOOTTIME, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}

extension XDPMode {
    /// The value recorded in `gw_loader_info.xdp_mode`.
    public var abiValue: UInt32 {
        switch self {
        case .native: return GW_XDP_MODE_NATIVE.rawValue
        case .generic: return GW_XDP_MODE_GENERIC.rawValue
        }
    }

    public init?(abiValue: UInt32) {
        switch abiValue {
        case GW_XDP_MODE_NATIVE.rawValue: self = .native
        case GW_XDP_MODE_GENERIC.rawValue: self = .generic
        default: return nil
        }
    }
}

extension XDPMaps {
    /// Visits every bucket of `gw_sources` or `gw_subnets` with batched lookups of `batchSize`
    /// entries a syscall. Written for these two maps' layouts (not generic) because it runs over
    /// up to a million entries at every scrape.
    public func forEachBucket(in map: BPFMap, batchSize: Int = 16384, _ body: (gw_addr, gw_bucket) -> Void) throws {
        guard map.info.keySize == MemoryLayout<gw_addr>.size, map.info.valueSize == MemoryLayout<gw_bucket>.size else {
            throw KernelError(operation: "map \(map.info.name) is not a bucket map: ABI mismatch")
        }
        let keys = UnsafeMutablePointer<gw_addr>.allocate(capacity: batchSize)
        let values = UnsafeMutablePointer<gw_bucket>.allocate(capacity: batchSize)
        defer { keys.deallocate(); values.deallocate() }
        // Hash maps use a 4-byte bucket index as the batch token.
        var inToken: UInt64 = 0, outToken: UInt64 = 0
        var first = true
        try withZeroed(bpf_map_batch_opts.self) { options in
            options.pointee.sz = MemoryLayout<bpf_map_batch_opts>.size
            while true {
                var count = UInt32(batchSize)
                let result = first
                    ? bpf_map_lookup_batch(map.descriptor.rawValue, nil, &outToken, keys, values, &count, options)
                    : bpf_map_lookup_batch(map.descriptor.rawValue, &inToken, &outToken, keys, values, &count, options)
                let finished = result != 0 && errno == ENOENT
                if result != 0 && !finished { throw KernelError.fromErrno("batch lookup in map \(map.info.name)") }
                for index in 0..<Int(count) { body(keys[index], values[index]) }
                if finished { return }
                inToken = outToken
                first = false
            }
        }
    }

    /// Entries of an LPM list by family.
    public func listEntries(_ map: BPFMap) throws -> (ipv4: Int, ipv6: Int) {
        let prefixes = try map.keys(as: gw_lpm_key.self).map(AddressPrefix.init(lpmKey:))
        let ipv4 = prefixes.filter(\.isIPv4).count
        return (ipv4, prefixes.count - ipv4)
    }
}

extension AddressPrefix {
    /// The network address of a bucket key (without the length), as text.
    public static func addressText(of key: gw_addr) -> (text: String, isIPv4: Bool) {
        var lpm = gw_lpm_key()
        lpm.prefixlen = 128
        lpm.addr = key.bytes
        let prefix = AddressPrefix(lpmKey: lpm)
        let text = prefix.description
        return (String(text[..<(text.lastIndex(of: "/") ?? text.endIndex)]), prefix.isIPv4)
    }
}
