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
    public static let actionNames = ["pass", "drop", "would_drop"]
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

    // MARK: Statistics

    /// A counter of the statistics array with its action and reason names.
    public struct Statistic: Sendable, Equatable {
        public var action: String
        public var reason: String
        public var packets: UInt64
        public var bytes: UInt64
    }

    /// The action each reason comes with (see `enum gw_reason`): the other pairings never happen,
    /// so they are neither read nor exported.
    public static let dropReasons: Set<String> = ["blocklist", "rate_ip", "rate_subnet"]
    /// The reasons observe mode counts as `would_drop` instead of dropping: the rate limits.
    /// Bans (`blocklist`) drop in both modes, so there is no `would_drop` blocklist counter.
    public static let wouldDropReasons: Set<String> = ["rate_ip", "rate_subnet"]

    /// Whether the program ever counts `reason` under `action`.
    public static func isPossible(action: String, reason: String) -> Bool {
        switch action {
        case "drop": return dropReasons.contains(reason)
        case "would_drop": return wouldDropReasons.contains(reason)
        default: return !dropReasons.contains(reason)
        }
    }

    /// Every possible (action, reason) counter, summed over CPUs.
    public func readStatistics() throws -> [Statistic] {
        var result: [Statistic] = []
        for action in Self.actionNames.indices {
            for reason in Self.reasonNames.indices
            where Self.isPossible(action: Self.actionNames[action], reason: Self.reasonNames[reason]) {
                let index = UInt32(action * Self.reasonNames.count + reason)
                let perCPU = try statistics.perCPUValues(at: index, as: gw_counter.self) ?? []
                result.append(Statistic(
                    action: Self.actionNames[action], reason: Self.reasonNames[reason],
                    packets: perCPU.reduce(0) { $0 &+ $1.packets },
                    bytes: perCPU.reduce(0) { $0 &+ $1.bytes }))
            }
        }
        return result
    }

    /// Packets counted for one (action, reason).
    public func packets(action: String, reason: String) throws -> UInt64 {
        try readStatistics().first { $0.action == action && $0.reason == reason }?.packets ?? 0
    }

    // MARK: Configuration

    /// Writes the limits, protected ports and both lists of a policy; the program reads them on its
    /// next packet. The allowlist is replaced; the policy's bans become exactly `blocklist` (in force
    /// for as long as a policy lists them), while manual and enforced bans keep their own expiry.
    /// The room for both lists is checked before anything is written, so a refused apply changes
    /// nothing; the lists are written in batches and refreshed once.
    public func apply(_ limits: XDPLimits, allowlist wanted: [AddressPrefix], blocklist policyBans: [AddressPrefix] = []) throws {
        let wantedAllowed = Set(wanted)
        try Self.checkRoom(wantedAllowed.count, in: allowlist, what: "allowlist entries")
        let allowed = try allowlist.entries(as: gw_lpm_key.self, gw_allow_entry.self)
        let bans = try readBans()
        var ledger = BanLedger(entries: bans.entries, now: bans.now)
        ledger.replacePolicyBans(with: policyBans)
        try Self.checkRoom(ledger.count, in: blocklist, what: "bans (the policy's and those kept from `block`)")

        let protected = Set(limits.protectedPorts)
        try ports.updateAll(count: Int(GW_PORTS_ENTRIES)) { port in
            UInt8(protected.contains(UInt16(port)) ? GW_PORT_PROTECTED : 0)
        }
        let present = Set(allowed.map { AddressPrefix(lpmKey: $0.0) })
        try allowlist.delete(batch: allowed.map(\.0).filter { !wantedAllowed.contains(AddressPrefix(lpmKey: $0)) })
        let entry = gw_allow_entry(added_boot_ns: BootClock.nanoseconds)
        try allowlist.update(batch: wantedAllowed.subtracting(present).map { ($0.lpmKey, entry) })
        try writeBans(ledger, replacing: bans.entries)
        try refreshLists(allowlist: Array(wantedAllowed), blocklist: Array(ledger.bans.keys), limits: limits)
    }

    /// Refuses a list of `count` entries that `map` has no room for.
    private static func checkRoom(_ count: Int, in map: BPFMap, what: String) throws {
        guard count <= Int(map.info.maxEntries) else {
            throw KernelError(operation: "map \(map.info.name) has room for \(map.info.maxEntries) entries, "
                + "not \(count) \(what); nothing was changed")
        }
    }

    /// The limits in force, or nil if none were written yet.
    public func limits() throws -> XDPLimits? {
        guard let value = try config.value(at: UInt32(0), as: gw_config.self), value.ipv6_subnet_prefix != 0 else {
            return nil
        }
        var protected: [UInt16] = []
        try ports.forEachEntry(keyType: UInt32.self, valueType: UInt8.self) { port, flag in
            if flag[0] == UInt8(GW_PORT_PROTECTED) { protected.append(UInt16(port)) }
        }
        return XDPLimits(configuration: value, protectedPorts: protected.sorted())
    }

    /// After the lists changed: rebuilds the trie prefilter from what they now hold, counts them into
    /// the config map (the program skips a trie whose count is 0) and bumps the generation, which
    /// voids every verdict cached in a bucket. With `limits` nil, the limits and observe mode in
    /// the config map are written back as they were read.
    private func refreshLists(allowlist allowed: [AddressPrefix], blocklist banned: [AddressPrefix], limits: XDPLimits?) throws {
        let words = ListFilter.words(for: allowed + banned)
        try listFilter.updateAll(count: words.count) { words[$0] }
        let current = try config.value(at: UInt32(0), as: gw_config.self)
        let generation = current.map { $0.list_generation == UInt32.max ? 1 : $0.list_generation + 1 } ?? 1
        var value: gw_config
        if let limits {
            value = limits.configuration(allowlistEntries: UInt32(allowed.count), blocklistEntries: UInt32(banned.count),
                                         listGeneration: generation)
        } else {
            guard let current else { return }
            value = current
            value.allowlist_entries = UInt32(allowed.count)
            value.blocklist_entries = UInt32(banned.count)
            value.list_generation = generation
        }
        try config.update(value, at: UInt32(0))
    }

    /// Continues the list generation of `old`, a config map of an earlier layout that this one
    /// replaces: buckets keep verdicts cached under the old generations, so the count must go on
    /// from there (restarting at 1 would one day meet a stale cached verdict again). gw_config only
    /// ever grows at its end, so the field sits at the same offset in every layout that has it.
    public func continueListGeneration(from old: BPFMap) throws {
        let offset = MemoryLayout<gw_config>.offset(of: \gw_config.list_generation)!
        guard let bytes = try old.rawValue(at: 0), bytes.count >= offset + 4 else { return }
        let generation = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) }
        var value = try config.value(at: UInt32(0), as: gw_config.self) ?? gw_config()
        value.list_generation = generation
        try config.update(value, at: UInt32(0))
    }

    // MARK: Blocklist

    /// Bans `prefix` for `origin` for `duration` (nil: until lifted), renewing that origin's ban if
    /// it had one; other origins' holds on the prefix keep their own lifetime.
    public func block(_ prefix: AddressPrefix, for duration: Duration?, origin: BlocklistHolder = .manual) throws {
        try changeBans { $0.hold(prefix, for: origin, duration: duration) }
    }

    /// Lifts the bans of `origins` on `prefix`. Returns the origins that still hold it (the
    /// policy's ban stays until a policy without it is loaded), or nil if none of `origins` banned
    /// it, in which case no ban changed.
    @discardableResult
    public func unblock(_ prefix: AddressPrefix, origins: Set<BlocklistHolder> = [.manual, .enforce]) throws -> Set<BlocklistHolder>? {
        try changeBans { ledger in
            var lifted = false
            for origin in origins where ledger.release(prefix, for: origin) { lifted = true }
            return lifted ? ledger.bans[prefix]?.origins ?? [] : nil
        }
    }

    /// One change to the blocklist: reads it once, lets `change` edit the ledger (expired holds
    /// already dropped), checks the room and writes back only the difference, in batches, removing
    /// expired entries on the way; then refreshes the lists once.
    public func changeBans<Result>(_ change: (inout BanLedger) throws -> Result) throws -> Result {
        let bans = try readBans()
        var ledger = BanLedger(entries: bans.entries, now: bans.now)
        let result = try change(&ledger)
        try Self.checkRoom(ledger.count, in: blocklist, what: "bans")
        try writeBans(ledger, replacing: bans.entries)
        let allowed = try allowlist.entries(as: gw_lpm_key.self, gw_allow_entry.self).map { AddressPrefix(lpmKey: $0.0) }
        try refreshLists(allowlist: allowed, blocklist: Array(ledger.bans.keys), limits: nil)
        return result
    }

    /// The blocklist as it is, read in batches, and the time it was read at.
    private func readBans() throws -> (entries: [AddressPrefix: gw_block_entry], now: UInt64) {
        let now = BootClock.nanoseconds
        var entries: [AddressPrefix: gw_block_entry] = [:]
        for (key, entry) in try blocklist.entries(as: gw_lpm_key.self, gw_block_entry.self) {
            entries[AddressPrefix(lpmKey: key)] = entry
        }
        return (entries, now)
    }

    /// Deletes what the ledger no longer holds (first, to make room), then writes what changed.
    private func writeBans(_ ledger: BanLedger, replacing current: [AddressPrefix: gw_block_entry]) throws {
        let changes = ledger.changes(from: current)
        try blocklist.delete(batch: changes.delete.map(\.lpmKey))
        try blocklist.update(batch: changes.write.map { ($0.0.lpmKey, $0.1) })
    }

    /// Bans in force (not expired) by family.
    public func bansInForce() throws -> (ipv4: Int, ipv6: Int) {
        let read = try readBans()
        var ipv4 = 0, ipv6 = 0
        for (prefix, entry) in read.entries where entry.expires_boot_ns == 0 || entry.expires_boot_ns > read.now {
            if prefix.isIPv4 { ipv4 += 1 } else { ipv6 += 1 }
        }
        return (ipv4, ipv6)
    }

    /// Every ban in force, in no particular order, with the origins holding it and its expiry
    /// (CLOCK_BOOTTIME nanoseconds; 0 = never). An expired entry, which judges nothing and goes
    /// with the next change, is left out.
    public func bans() throws -> [(prefix: AddressPrefix, origins: Set<BlocklistHolder>, expiresBootNanoseconds: UInt64)] {
        let read = try readBans()
        return BanLedger(entries: read.entries, now: read.now).bans.map { ($0.key, $0.value.origins, $0.value.expiry) }
    }

    /// Every entry in force with the holds on it (expired holds left out).
    public func holds() throws -> [AddressPrefix: BanHolds] {
        let read = try readBans()
        return BanLedger(entries: read.entries, now: read.now).bans
    }

    /// Carries the bans of `old`, a blocklist of the layout before ban origins (ABI 6: expiry and
    /// added time only), into this one as manual bans with their expiry: a ban is never lost to an
    /// upgrade. Expired entries are left behind. Call before anything else writes the blocklist.
    public func carryOverLegacyBans(from old: BPFMap) throws {
        let carried = try Self.legacyBans(in: old).map { ($0.key.lpmKey, $0.value) }
        try Self.checkRoom(carried.count, in: blocklist, what: "bans carried over")
        try blocklist.update(batch: carried)
    }

    /// The live bans of a blocklist of the layout before ban origins, as manual bans.
    private static func legacyBans(in old: BPFMap) throws -> [AddressPrefix: gw_block_entry] {
        struct LegacyEntry { var expiresBootNanoseconds: UInt64; var addedBootNanoseconds: UInt64 }
        let now = BootClock.nanoseconds
        var bans: [AddressPrefix: gw_block_entry] = [:]
        for key in try old.keys(as: gw_lpm_key.self) {
            guard let legacy = try old.value(at: key, as: LegacyEntry.self),
                  legacy.expiresBootNanoseconds == 0 || legacy.expiresBootNanoseconds > now else { continue }
            var holds = BanHolds()
            holds.addedBootNanoseconds = legacy.addedBootNanoseconds
            holds.hold(.manual, until: legacy.expiresBootNanoseconds)
            bans[AddressPrefix(lpmKey: key)] = holds.entry
        }
        return bans
    }

    /// Whether `map` is a blocklist of the layout before ban origins (ABI 6), which
    /// `carryOverLegacyBans` converts.
    public static func isLegacyBlocklist(_ map: BPFMap) -> Bool {
        map.info.keySize == MemoryLayout<gw_lpm_key>.size && map.info.valueSize == 16
    }

    /// How many bans the pinned blocklist `pinned` (this layout or the legacy one) would hold once
    /// `policyBans` are the policy's: a load checks it against the room before it changes anything.
    public static func bansAfterLoading(policyBans: [AddressPrefix], into pinned: BPFMap) throws -> Int {
        let now = BootClock.nanoseconds
        let entries = isLegacyBlocklist(pinned) ? try legacyBans(in: pinned)
            : Dictionary(try pinned.entries(as: gw_lpm_key.self, gw_block_entry.self).map { (AddressPrefix(lpmKey: $0.0), $0.1) },
                         uniquingKeysWith: { first, _ in first })
        var ledger = BanLedger(entries: entries, now: now)
        ledger.replacePolicyBans(with: policyBans)
        return ledger.count
    }

    // MARK: Rate state

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

    // MARK: Loader record

    public func loaderInfo() throws -> gw_loader_info? {
        let info = try loader.value(at: UInt32(0), as: gw_loader_info.self)
        return info.flatMap { $0.abi_version == 0 ? nil : $0 }
    }

    /// Records the attach for status and the exporter; `requested` is the raw `gw_xdp_mode` asked for.
    public func recordAttach(mode: XDPMode, requested: UInt32, interface: String, interfaceIndex: UInt32,
                             wallClockNanoseconds: UInt64, programDigest: UInt64) throws {
        var record = gw_loader_info()
        record.program_digest = programDigest
        record.abi_version = UInt32(GW_ABI_VERSION)
        record.xdp_mode = mode.abiValue
        record.requested_mode = requested
        record.ifindex = interfaceIndex
        record.attached_unix_ns = wallClockNanoseconds
        withUnsafeMutableBytes(of: &record.ifname) { buffer in
            buffer.copyBytes(from: interface.utf8.prefix(buffer.count - 1))
        }
        try loader.update(record, at: UInt32(0))
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
