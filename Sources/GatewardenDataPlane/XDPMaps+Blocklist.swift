import CGatewardenABI
import CLibBPF
import GatewardenCore
import GatewardenKernel
#if canImport(Glibc)
import Glibc
#endif

/// The blocklist: every ban with the holders keeping it (policy, manual, enforce), changed as one ledger.
extension XDPMaps {
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
    func readBans() throws -> (entries: [AddressPrefix: gw_block_entry], now: UInt64) {
        let now = BootClock.nanoseconds
        var entries: [AddressPrefix: gw_block_entry] = [:]
        for (key, entry) in try blocklist.entries(as: gw_lpm_key.self, gw_block_entry.self) {
            entries[AddressPrefix(lpmKey: key)] = entry
        }
        return (entries, now)
    }

    /// Deletes what the ledger no longer holds (first, to make room), then writes what changed.
    func writeBans(_ ledger: BanLedger, replacing current: [AddressPrefix: gw_block_entry]) throws {
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
    static func legacyBans(in old: BPFMap) throws -> [AddressPrefix: gw_block_entry] {
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
}
