import CGatewardenABI
import CLibBPF
import Foundation
import GatewardenKernel
import Testing
import GatewardenCore
import GatewardenDataPlane

/// Policy bans, manual bans and bulk lists on a loaded instance: each origin keeps its own
/// lifetime across loads, in both layers, and a large list is in force entry by entry.
@Suite("Ban lifetimes across loads", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct BanLifetimeTests {
    /// A loaded lab and a policy file the test rewrites between loads.
    final class LoadedLab {
        let lab: LabNetwork
        let policy: URL
        var arguments: [String] { ["--interface", lab.gatewayInterface, "--netns", lab.gateway] }

        init() throws {
            lab = try LabNetwork()
            policy = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-bans-\(getpid())-\(lab.gateway).yaml")
        }

        func load(_ yaml: String) throws {
            try yaml.write(to: policy, atomically: true, encoding: .utf8)
            try GatewardenBinary.run(["load", "--policy", policy.path] + arguments)
        }

        func remove() {
            _ = try? GatewardenBinary.run(["unload"] + arguments, check: false)
            try? FileManager.default.removeItem(at: policy)
            lab.remove()
        }

        func bans() throws -> [AddressPrefix: (origins: Set<BlocklistHolder>, expiry: UInt64)] {
            var result: [AddressPrefix: (Set<BlocklistHolder>, UInt64)] = [:]
            for ban in try lab.gatewayInstance().maps().bans() { result[ban.prefix] = (ban.origins, ban.expiresBootNanoseconds) }
            return result
        }

        /// The elements of an nftables set in the gateway namespace, as nft prints them.
        func nftSet(_ name: String) throws -> String {
            try lab.inGateway(["nft", "list", "set", "inet", "gatewarden", name]).stdout
        }
    }

    @Test("a permanent manual ban stays permanent through a load that lists it and one that no longer does")
    func manualBanSurvivesLoads() throws {
        let loaded = try LoadedLab()
        defer { loaded.remove() }
        let banned = try AddressPrefix("\(loaded.lab.clientAddress)/32")
        try loaded.load("blocklist: {entries: [198.51.100.0/24]}\n")
        try GatewardenBinary.run(["block", banned.description] + loaded.arguments)

        try loaded.load("blocklist: {entries: [198.51.100.0/24, \(banned)]}\n")
        let both = try #require(try loaded.bans()[banned])
        #expect(both.origins == [.manual, .policy])
        #expect(both.expiry == 0, "a load never gives a permanent manual ban a timeout")

        try loaded.load("blocklist: {entries: [198.51.100.0/24]}\n")
        let manual = try #require(try loaded.bans()[banned], "the manual ban outlives the policy's")
        #expect(manual.origins == [.manual])
        #expect(manual.expiry == 0)

        // And it still drops: no packet of the banned client reaches the gateway's stack.
        try loaded.lab.addWitness(sources: [loaded.lab.clientAddress])
        #expect(try loaded.lab.startUDPFlood(port: 443, seconds: 0.3, maximumPackets: 50).finish() == 50)
        #expect(try loaded.lab.witnessPackets(from: loaded.lab.clientAddress) == 0)
    }

    @Test("a timed manual ban keeps its expiry across loads")
    func timedManualBanKeepsItsExpiry() throws {
        let loaded = try LoadedLab()
        defer { loaded.remove() }
        let banned = try AddressPrefix("198.51.100.0/24")
        try loaded.load("blocklist: {entries: []}\n")
        try GatewardenBinary.run(["block", banned.description, "--for", "7d"] + loaded.arguments)
        let expiry = try #require(try loaded.bans()[banned]).expiry
        #expect(expiry != 0)
        for entries in ["[\(banned)]", "[]", "[\(banned)]"] {
            try loaded.load("blocklist: {timeout: 1h, entries: \(entries)}\n")
        }
        let after = try #require(try loaded.bans()[banned])
        #expect(after.expiry == 0 && after.origins == [.manual, .policy], "listed by the policy: in force for good")
        try loaded.load("blocklist: {entries: []}\n")
        #expect(try loaded.bans()[banned]?.expiry == expiry, "the manual ban's own 7 days, not the policy's 1h timeout")
    }

    @Test("unblock lifts the manual ban only: the policy's stays, and a ban the policy alone holds is refused")
    func unblockLeavesThePolicysBan() throws {
        let loaded = try LoadedLab()
        defer { loaded.remove() }
        let banned = try AddressPrefix("198.51.100.0/24")
        try loaded.load("blocklist: {entries: [\(banned)]}\n")
        let refused = try GatewardenBinary.run(["unblock", banned.description] + loaded.arguments, check: false)
        #expect(refused.status != 0)
        #expect(try loaded.bans()[banned]?.origins == [.policy])

        try GatewardenBinary.run(["block", banned.description, "--for", "1h"] + loaded.arguments)
        let lifted = try GatewardenBinary.run(["unblock", banned.description] + loaded.arguments)
        #expect(lifted.stdout.contains("the policy still bans it"))
        #expect(try loaded.bans()[banned]?.origins == [.policy])
        #expect(try loaded.bans()[banned]?.expiry == 0)
    }

    @Test("a policy entry has no expiry in either layer")
    func policyBanHasNoExpiry() throws {
        let loaded = try LoadedLab()
        defer { loaded.remove() }
        try loaded.load("blocklist: {timeout: 1h, entries: [198.51.100.0/24, \"2001:db8:bad::/48\"]}\n")
        let bans = try loaded.bans()
        #expect(bans[try AddressPrefix("198.51.100.0/24")]?.expiry == 0)
        #expect(bans[try AddressPrefix("2001:db8:bad::/48")]?.expiry == 0)
        #expect(bans.values.allSatisfy { $0.origins == [.policy] })
        let v4 = try loaded.nftSet("policy_block_v4")
        #expect(v4.contains("198.51.100.0/24") && !v4.contains("expires"))
        #expect(try loaded.nftSet("policy_block_v6").contains("2001:db8:bad::/48"))
        #expect(!(try loaded.nftSet("block_v4")).contains("198.51.100.0/24"), "the policy's bans are not timed bans")
    }

    @Test("a policy entry removed from the policy stops dropping at the next load, in both layers")
    func removedPolicyBanStopsDropping() throws {
        let loaded = try LoadedLab()
        defer { loaded.remove() }
        let lab = loaded.lab
        try loaded.load("blocklist: {entries: [\(lab.clientAddress)/32]}\n")
        try lab.addWitness(sources: [lab.clientAddress])
        #expect(try lab.startUDPFlood(port: 443, seconds: 0.3, maximumPackets: 50).finish() == 50)
        #expect(try lab.witnessPackets(from: lab.clientAddress) == 0, "banned by the policy")
        let dropped = try lab.gatewayInstance().maps().packets(action: "drop", reason: "blocklist")
        #expect(dropped >= 50)

        try loaded.load("blocklist: {entries: []}\n")
        #expect(try loaded.bans().isEmpty)
        #expect(!(try loaded.nftSet("policy_block_v4")).contains(lab.clientAddress))
        #expect(!(try loaded.nftSet("block_v4")).contains(lab.clientAddress))
        #expect(try lab.startUDPFlood(port: 443, seconds: 0.3, maximumPackets: 50).finish() == 50)
        #expect(try lab.witnessPackets(from: lab.clientAddress) > 0, "the ban went with the policy entry")
        #expect(try lab.gatewayInstance().maps().packets(action: "drop", reason: "blocklist") == dropped)
    }

    @Test("a 5,000-entry blocklist is in force entry by entry in both layers, and a smaller one replaces it")
    func bulkBlocklist() throws {
        let loaded = try LoadedLab()
        defer { loaded.remove() }
        let prefixes = (0..<5000).map { try! AddressPrefix("10.\($0 / 256).\($0 % 256).0/24") }
        try loaded.load("blocklist: {entries: [\(prefixes.map(\.description).joined(separator: ", "))]}\n")

        let maps = try loaded.lab.gatewayInstance().maps()
        let bans = try loaded.bans()
        #expect(bans.count == 5000)
        #expect(prefixes.allSatisfy { bans[$0]?.origins == [.policy] && bans[$0]?.expiry == 0 })
        #expect(try maps.bansInForce() == (5000, 0))
        let config = try #require(try maps.config.value(at: UInt32(0), as: gw_config.self))
        #expect(config.blocklist_entries == 5000, "the program consults the trie")
        let listed = try nftElements(loaded.lab, set: "policy_block_v4")
        #expect(listed == Set(prefixes.map(\.description)))

        try loaded.load("blocklist: {entries: [\(prefixes.prefix(10).map(\.description).joined(separator: ", "))]}\n")
        #expect(try loaded.bans().count == 10)
        #expect(try nftElements(loaded.lab, set: "policy_block_v4").count == 10)
        #expect(try maps.config.value(at: UInt32(0), as: gw_config.self)?.blocklist_entries == 10)
    }

    @Test("a load the blocklist has no room for changes nothing")
    func refusedForRoom() throws {
        let loaded = try LoadedLab()
        defer { loaded.remove() }
        let capacity = XDPMaps.blocklistCapacity
        try loaded.load("blocklist: {entries: [198.51.100.0/24]}\n")
        // Manual bans filling all but a few of the room, written straight into the map.
        let maps = try loaded.lab.gatewayInstance().maps()
        try maps.changeBans { ledger in
            for index in 0..<UInt32(capacity - 3) {
                var key = gw_lpm_key()
                key.prefixlen = 128
                withUnsafeMutableBytes(of: &key.addr) { bytes in
                    bytes[10] = 0xff; bytes[11] = 0xff
                    bytes[12] = 10; bytes[13] = UInt8(index >> 16); bytes[14] = UInt8((index >> 8) & 255); bytes[15] = UInt8(index & 255)
                }
                ledger.hold(AddressPrefix(lpmKey: key), for: .manual, duration: nil)
            }
        }
        let before = try maps.bansInForce()
        let listing = (0..<5).map { "203.0.113.\($0 * 8)/29" }.joined(separator: ", ")
        try #"blocklist: {entries: [\#(listing)]}"#.write(to: loaded.policy, atomically: true, encoding: .utf8)
        let refused = try GatewardenBinary.run(["load", "--policy", loaded.policy.path] + loaded.arguments, check: false)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("room for \(capacity) bans"))
        #expect(try maps.bansInForce() == before)
        #expect(try loaded.bans()[try AddressPrefix("198.51.100.0/24")]?.origins == [.policy], "the old policy's ban stays")
        #expect(try loaded.nftSet("policy_block_v4").contains("198.51.100.0/24"), "nftables kept the old policy too")
    }

    @Test("an upgrade from the blocklist layout before ban origins (ABI 6) keeps every live ban, as a manual ban")
    func legacyBansCarryOver() throws {
        let loaded = try LoadedLab()
        defer { loaded.remove() }
        try loaded.load("blocklist: {entries: []}\n")
        let layout = try loaded.lab.gatewayLayout()
        let now = BootClock.nanoseconds
        let client = try AddressPrefix("\(loaded.lab.clientAddress)/32")
        let timed = try AddressPrefix("198.51.100.0/24"), lapsed = try AddressPrefix("203.0.113.0/24")
        // What ABI 6 pinned: an LPM trie of {expires_boot_ns, added_boot_ns}.
        var options = bpf_map_create_opts()
        options.sz = MemoryLayout<bpf_map_create_opts>.size
        options.map_flags = UInt32(BPF_F_NO_PREALLOC)
        let fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, XDPMaps.Name.blocklist, 20, 16, UInt32(XDPMaps.blocklistCapacity), &options)
        guard fd >= 0 else { throw KernelError.fromErrno("create the ABI 6 blocklist") }
        defer { close(fd) }
        for (prefix, expiry) in [(client, UInt64(0)), (timed, now + 3_600_000_000_000), (lapsed, now - 1)] {
            var key = prefix.lpmKey
            var value: (UInt64, UInt64) = (expiry, now - 10)
            guard bpf_map_update_elem(fd, &key, &value, 0) == 0 else { throw KernelError.fromErrno("write the ABI 6 blocklist") }
        }
        unlink(layout.map(XDPMaps.Name.blocklist))
        guard bpf_obj_pin(fd, layout.map(XDPMaps.Name.blocklist)) == 0 else { throw KernelError.fromErrno("pin the ABI 6 blocklist") }

        try loaded.load("blocklist: {entries: [192.0.2.128/25]}\n")
        let bans = try loaded.bans()
        #expect(bans[client]?.origins == [.manual] && bans[client]?.expiry == 0)
        #expect(bans[timed]?.origins == [.manual] && bans[timed]?.expiry == now + 3_600_000_000_000)
        #expect(bans[lapsed] == nil, "an expired ban is left behind")
        #expect(bans[try AddressPrefix("192.0.2.128/25")]?.origins == [.policy])
        #expect(try BPFMap(pinnedAt: layout.map(XDPMaps.Name.blocklist)).info.valueSize == MemoryLayout<gw_block_entry>.size)
        try loaded.lab.addWitness(sources: [loaded.lab.clientAddress])
        #expect(try loaded.lab.startUDPFlood(port: 443, seconds: 0.3, maximumPackets: 20).finish() == 20)
        #expect(try loaded.lab.witnessPackets(from: loaded.lab.clientAddress) == 0, "the carried ban drops")
    }

    private func nftElements(_ lab: LabNetwork, set: String) throws -> Set<String> {
        let json = try lab.inGateway(["nft", "-j", "list", "set", "inet", "gatewarden", set]).stdout
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        let items = object?["nftables"] as? [[String: Any]] ?? []
        let elements = items.compactMap { ($0["set"] as? [String: Any])?["elem"] as? [Any] }.first ?? []
        return Set(elements.compactMap { element in
            guard let prefix = (element as? [String: Any])?["prefix"] as? [String: Any],
                  let address = prefix["addr"] as? String, let length = prefix["len"] as? Int else { return nil }
            return "\(address)/\(length)"
        })
    }
}
