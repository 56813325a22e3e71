import CGatewardenABI
import CLibBPF
import GatewardenCore
import GatewardenKernel
#if canImport(Glibc)
import Glibc
#endif

/// What `load` writes for the program to read: limits, observe mode, ports, the allowlist and the list filter.
extension XDPMaps {
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
    static func checkRoom(_ count: Int, in map: BPFMap, what: String) throws {
        guard count <= Int(map.info.maxEntries) else {
            throw KernelError(operation: "map \(map.info.name) has room for \(map.info.maxEntries) entries, "
                + "not \(count) \(what); nothing was changed")
        }
    }

    /// Stops the program answering SYNs with cookies (they pass to nftables again), leaving every other
    /// setting as it is; `apply` with cookies switches them on again.
    public func stopAnsweringSYNs() throws {
        guard var value = try config.value(at: UInt32(0), as: gw_config.self), value.syncookie_flags != 0 else { return }
        value.syncookie_flags = 0
        try config.update(value, at: UInt32(0))
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
    func refreshLists(allowlist allowed: [AddressPrefix], blocklist banned: [AddressPrefix], limits: XDPLimits?) throws {
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
}
