import CGatewardenABI
import Foundation
import GatewardenKernel
import Testing
import GatewardenCore
import GatewardenDataPlane

/// One crafted packet, the verdict the program must give it and the counter it must move.
struct VerdictCase: CustomTestStringConvertible, Sendable {
    let name: String
    let packet: [UInt8]
    let action: ProgramTestRun.Action
    let reason: String

    var testDescription: String { name }
}

private let client: [UInt8] = [192, 0, 2, 7]
private let client6 = Packet.ipv6Address("2001:db8:1:2::7")
// Options that read as destination port 443 if a parser ignored IHL and took them for TCP.
private let portLookalikeOptions: [UInt8] = [0x01, 0x01, 0x01, 0xbb]
/// One more extension header than the program walks.
private let sevenExtensions: [Packet.Extension] = [.hopByHop] + Array(repeating: .destinationOptions, count: 6)

private let statelessCases: [VerdictCase] = {
    let tcp443 = Packet.ipv4(source: client, transport: .tcp(destinationPort: 443))
    let v6tcp443 = Packet.ipv6(source: client6, transport: .tcp(destinationPort: 443))
    return [
        .init(name: "IPv4 TCP to 443", packet: tcp443, action: .pass, reason: "within_limit"),
        .init(name: "IPv4 UDP to 443", packet: Packet.ipv4(source: client, transport: .udp(destinationPort: 443)),
              action: .pass, reason: "within_limit"),
        .init(name: "IPv4 TCP to 22 (unprotected)", packet: Packet.ipv4(source: client, transport: .tcp(destinationPort: 22)),
              action: .pass, reason: "unprotected"),
        .init(name: "IPv4 ICMP (no port)", packet: Packet.ipv4(source: client, transport: .raw(protocolNumber: 1, payload: [8, 0, 0, 0])),
              action: .pass, reason: "unprotected"),
        .init(name: "one VLAN tag", packet: Packet.ipv4(source: client, transport: .tcp(destinationPort: 443), vlans: [10]),
              action: .pass, reason: "within_limit"),
        .init(name: "two VLAN tags (802.1ad + 802.1Q)",
              packet: Packet.ipv4(source: client, transport: .tcp(destinationPort: 443), vlans: [100, 10]),
              action: .pass, reason: "within_limit"),
        .init(name: "IPv4 options, port 22 behind them (IHL honoured)",
              packet: Packet.ipv4(source: client, transport: .tcp(destinationPort: 22), options: portLookalikeOptions),
              action: .pass, reason: "unprotected"),
        .init(name: "IPv4 options, port 443 behind them",
              packet: Packet.ipv4(source: client, transport: .tcp(destinationPort: 443), options: [1, 1, 1, 0]),
              action: .pass, reason: "within_limit"),
        .init(name: "IHL 4 (< 5)", packet: Packet.ipv4(source: client, transport: .tcp(destinationPort: 443), ihl: 4),
              action: .pass, reason: "malformed"),
        .init(name: "IHL 15 beyond the frame", packet: Packet.ipv4(source: client, transport: .udp(destinationPort: 443), ihl: 15),
              action: .pass, reason: "malformed"),
        // Frames shorter than an Ethernet header never reach XDP (BPF_PROG_TEST_RUN refuses them too);
        // the shortest truncation a program can see is inside the VLAN tags or the EtherType.
        .init(name: "Ethernet header only, no payload", packet: Array(tcp443.prefix(14)), action: .pass, reason: "malformed"),
        .init(name: "truncated VLAN tag", packet: Array(Packet.ipv4(source: client, transport: .tcp(destinationPort: 443), vlans: [10]).prefix(16)),
              action: .pass, reason: "malformed"),
        .init(name: "truncated IPv4 header", packet: Array(tcp443.prefix(14 + 12)), action: .pass, reason: "malformed"),
        .init(name: "truncated TCP header", packet: Array(tcp443.prefix(14 + 20 + 10)), action: .pass, reason: "malformed"),
        .init(name: "TCP data offset < 5", packet: Packet.ipv4(source: client, transport: .tcp(destinationPort: 443, dataOffsetWords: 2)),
              action: .pass, reason: "malformed"),
        .init(name: "IPv4 non-first fragment (no ports: judged as protected)",
              packet: Packet.ipv4(source: client, transport: .raw(protocolNumber: 6, payload: [UInt8](repeating: 0, count: 40)),
                                  fragmentOffset: 185),
              action: .pass, reason: "within_limit"),
        .init(name: "IPv4 first fragment to port 22",
              packet: Packet.ipv4(source: client, transport: .tcp(destinationPort: 22), moreFragments: true),
              action: .pass, reason: "unprotected"),
        .init(name: "IPv6 TCP to 443", packet: v6tcp443, action: .pass, reason: "within_limit"),
        .init(name: "IPv6 in two VLAN tags", packet: Packet.ipv6(source: client6, transport: .udp(destinationPort: 80), vlans: [7, 8]),
              action: .pass, reason: "within_limit"),
        .init(name: "IPv6 hop-by-hop, routing, destination options, then TCP 443",
              packet: Packet.ipv6(source: client6, transport: .tcp(destinationPort: 443),
                                  extensions: [.hopByHop, .routing, .destinationOptions]),
              action: .pass, reason: "within_limit"),
        .init(name: "IPv6 extensions, then TCP 22",
              packet: Packet.ipv6(source: client6, transport: .tcp(destinationPort: 22), extensions: [.hopByHop, .destinationOptions]),
              action: .pass, reason: "unprotected"),
        .init(name: "IPv6 non-first fragment",
              packet: Packet.ipv6(source: client6, transport: .raw(protocolNumber: 6, payload: [UInt8](repeating: 0, count: 16)),
                                  extensions: [.fragment(offset: 100, more: false)]),
              action: .pass, reason: "within_limit"),
        .init(name: "IPv6 first fragment to port 22",
              packet: Packet.ipv6(source: client6, transport: .tcp(destinationPort: 22), extensions: [.fragment(offset: 0, more: true)]),
              action: .pass, reason: "unprotected"),
        .init(name: "IPv6 with seven extension headers (beyond the walk)",
              packet: Packet.ipv6(source: client6, transport: .tcp(destinationPort: 443), extensions: sevenExtensions),
              action: .pass, reason: "unsupported"),
        .init(name: "IPv6 ESP", packet: Packet.ipv6(source: client6, transport: .raw(protocolNumber: 50, payload: [UInt8](repeating: 0, count: 16))),
              action: .pass, reason: "unsupported"),
        .init(name: "truncated IPv6 header", packet: Array(v6tcp443.prefix(14 + 30)), action: .pass, reason: "malformed"),
        .init(name: "truncated IPv6 extension header",
              packet: Array(Packet.ipv6(source: client6, transport: .tcp(destinationPort: 443), extensions: [.hopByHop]).prefix(14 + 40 + 1)),
              action: .pass, reason: "malformed"),
        .init(name: "ARP", packet: Packet.arp(), action: .pass, reason: "not_ip"),
    ]
}()

@Suite("XDP verdicts on crafted packets (BPF_PROG_TEST_RUN)", .enabled(if: Privileges.isRoot, Privileges.reason))
struct VerdictTests {
    @Test("each packet gets its verdict and moves exactly its reason counter", arguments: statelessCases)
    func verdict(_ testCase: VerdictCase) throws {
        let program = try TestProgram(limits: .unlimited)
        let action = try program.run(testCase.packet)
        #expect(action == testCase.action)
        let counters = try program.counters()
        let key = "\(testCase.action == .drop ? "drop" : "pass")/\(testCase.reason)"
        #expect(counters[key] == 1, "counter \(key)")
        #expect(counters.values.reduce(0, +) == 1, "exactly one counter moved: \(counters.filter { $0.value > 0 })")
    }

    @Test("an allowlisted source passes above every limit, on any port")
    func allowlist() throws {
        let program = try TestProgram(limits: XDPLimits.unlimited.with(source: .init(packetsPerSecond: 1, burst: 1),
                                                                       subnet: .init(packetsPerSecond: 1, burst: 1)),
                                      allowlist: [try AddressPrefix("203.0.113.0/24"), try AddressPrefix("2001:db8:a11::/48")])
        for _ in 0..<20 {
            #expect(try program.run(Packet.ipv4(source: [203, 0, 113, 9], transport: .tcp(destinationPort: 443))) == .pass)
            #expect(try program.run(Packet.ipv6(source: Packet.ipv6Address("2001:db8:a11:5::1"), transport: .udp(destinationPort: 80))) == .pass)
        }
        #expect(try program.counters()["pass/allowlist"] == 40)
        // A neighbour outside the allowlisted /24 is limited.
        #expect(try program.run(Packet.ipv4(source: [203, 0, 114, 9], transport: .tcp(destinationPort: 443))) == .pass)
        #expect(try program.run(Packet.ipv4(source: [203, 0, 114, 9], transport: .tcp(destinationPort: 443))) == .drop)
    }

    @Test("a blocklisted CIDR drops on every port, IPv4 and IPv6; an expired ban does not")
    func blocklist() throws {
        let program = try TestProgram(limits: .unlimited)
        try program.maps.block(try AddressPrefix("198.51.100.0/24"), for: .seconds(3600))
        try program.maps.block(try AddressPrefix("2001:db8:bad::/48"), for: nil)
        try program.maps.block(try AddressPrefix("192.0.2.128/25"), for: .nanoseconds(1))

        #expect(try program.run(Packet.ipv4(source: [198, 51, 100, 9], transport: .tcp(destinationPort: 22))) == .drop)
        #expect(try program.run(Packet.ipv4(source: [198, 51, 100, 200], transport: .tcp(destinationPort: 443))) == .drop)
        #expect(try program.run(Packet.ipv6(source: Packet.ipv6Address("2001:db8:bad:1::9"), transport: .udp(destinationPort: 53))) == .drop)
        #expect(try program.run(Packet.ipv4(source: [198, 51, 101, 9], transport: .tcp(destinationPort: 443))) == .pass)
        // Expired: the entry is still in the trie but no longer judged.
        #expect(try program.run(Packet.ipv4(source: [192, 0, 2, 200], transport: .tcp(destinationPort: 443))) == .pass)

        let counters = try program.counters()
        #expect(counters["drop/blocklist"] == 3)
        #expect(counters["pass/within_limit"] == 2)
    }

    @Test("an expired narrow ban never unmasks a live broader one, however deep the nesting")
    func expiredNarrowBan() throws {
        let program = try TestProgram(limits: .unlimited)
        try program.maps.block(try AddressPrefix("192.0.0.0/16"), for: nil)
        try program.maps.block(try AddressPrefix("2001:db8::/32"), for: .seconds(3600))
        // Expired entries as a change leaves them until the next one removes them: written straight
        // into the trie, since every change through XDPMaps sweeps them out.
        for expired in ["192.0.2.0/24", "192.0.2.0/28", "192.0.2.7/32", "2001:db8:1:2::/64"] {
            var holds = BanHolds()
            holds.hold(.manual, until: BootClock.nanoseconds - 1)
            try program.maps.blocklist.update(holds.entry, at: try AddressPrefix(expired).lpmKey)
        }
        // Three expired bans between the source and the live /16: still dropped.
        #expect(try program.run(Packet.ipv4(source: client, transport: .tcp(destinationPort: 443))) == .drop)
        #expect(try program.run(Packet.ipv4(source: [192, 0, 2, 200], transport: .tcp(destinationPort: 22))) == .drop)
        #expect(try program.run(Packet.ipv6(source: client6, transport: .tcp(destinationPort: 443))) == .drop)
        #expect(try program.maps.bansInForce() == (1, 1), "expired entries are not bans in force")
        // Outside every live ban, the expired ones decide nothing; and the change removed them.
        try program.maps.unblock(try AddressPrefix("192.0.0.0/16"))
        #expect(try program.run(Packet.ipv4(source: client, transport: .tcp(destinationPort: 443))) == .pass)
        #expect(try program.counters()["drop/blocklist"] == 3)
        #expect(try program.maps.blocklist.keys(as: gw_lpm_key.self).count == 1, "only the live IPv6 ban is left in the trie")
        #expect(try program.maps.config.value(at: UInt32(0), as: gw_config.self)?.blocklist_entries == 1)
    }

    @Test("a cached list verdict is void the moment the lists change")
    func verdictCacheInvalidation() throws {
        // Populated lists elsewhere, so the program consults (and caches) them for this source.
        // A generous source limit gives the source a bucket, which is where the verdict is cached.
        let limits = XDPLimits.unlimited.with(source: .init(packetsPerSecond: 1_000_000, burst: 1_000_000))
        let program = try TestProgram(limits: limits, allowlist: [try AddressPrefix("203.0.113.0/24")])
        let packet = Packet.ipv4(source: client, transport: .tcp(destinationPort: 443))
        // A source gets its bucket when seen twice within the sighting window, and its verdict is cached
        // by the packets after: on a busy machine back-to-back test runs can be further apart than the
        // window, so run until it is cached (or clearly never is).
        var cached = false
        for _ in 0..<50 where !cached {
            #expect(try program.run(packet) == .pass)
            cached = try program.maps.sourceBucket(address: client).map { $0.list_verdict != 0 } ?? false
        }
        #expect(cached, "the verdict is cached")

        try program.maps.block(try AddressPrefix("192.0.2.0/24"), for: nil)
        #expect(try program.run(packet) == .drop)
        #expect(try program.run(packet) == .drop)
        try program.maps.unblock(try AddressPrefix("192.0.2.0/24"))
        #expect(try program.run(packet) == .pass)
        try program.maps.apply(limits, allowlist: [try AddressPrefix("192.0.2.7/32")])
        #expect(try program.run(packet) == .pass)
        #expect(try program.counters()["pass/allowlist"] == 1)
    }

    @Test("a source over its rate is dropped as rate_ip once its burst is spent")
    func sourceRate() throws {
        let program = try TestProgram(limits: XDPLimits.unlimited.with(source: .init(packetsPerSecond: 1, burst: 3)))
        let packet = Packet.ipv4(source: client, transport: .tcp(destinationPort: 443))
        let verdicts = try (0..<5).map { _ in try program.run(packet) }
        #expect(verdicts == [.pass, .pass, .pass, .drop, .drop])
        #expect(try program.counters()["drop/rate_ip"] == 2)
        #expect(try program.maps.droppedPackets(address: client) == 2)
        #expect(try program.maps.entries(of: program.maps.offenders) == 1)
        // Registered as an offender with the power of two its count last reached.
        for _ in 0..<3 { _ = try program.run(packet) }
        let offender = gw_offender_key(addr: XDPMaps.key(address: client), kind: GW_OFFENDER_SOURCE.rawValue)
        #expect(try program.maps.offenders.value(at: offender, as: UInt64.self) == 4)
        #expect(try program.maps.droppedPackets(address: client) == 5)
        // Another source has its own bucket.
        #expect(try program.run(Packet.ipv4(source: [192, 0, 2, 8], transport: .tcp(destinationPort: 443))) == .pass)
        // Unprotected ports are never charged.
        #expect(try program.run(Packet.ipv4(source: client, transport: .tcp(destinationPort: 22))) == .pass)
    }

    @Test("an IPv6 packet from ::ffff:a.b.c.d or elsewhere in ::/64 is never charged to the IPv4 source a.b.c.d, nor its /64 to every IPv4 address")
    func ipv4MappedSourcesAreNotJudged() throws {
        let program = try TestProgram(limits: XDPLimits.unlimited.with(source: .init(packetsPerSecond: 1, burst: 1),
                                                                       subnet: .init(packetsPerSecond: 1, burst: 1)))
        let mapped = Packet.ipv6(source: Packet.ipv6Address("::ffff:198.51.100.9"), transport: .tcp(destinationPort: 443))
        let compatible = Packet.ipv6(source: Packet.ipv6Address("::198.51.100.9"), transport: .tcp(destinationPort: 443))
        for packet in [mapped, compatible, mapped, compatible] {
            #expect(try program.run(packet) == .pass)
        }
        #expect(try program.counters()["pass/malformed"] == 4)
        #expect(try program.maps.droppedPackets(address: [198, 51, 100, 9]) == nil)
        #expect(try program.maps.entries(of: program.maps.subnets) == 0, "no ::/64 bucket, whose ban would cover IPv4")
        // The IPv4 source itself still gets its own budget, untouched by the IPv6 packets.
        #expect(try program.run(Packet.ipv4(source: [198, 51, 100, 9], transport: .tcp(destinationPort: 443))) == .pass)
    }

    @Test("a header chain the walk does not reach (seven IPv6 options, ESP) is limited by its source and subnet, whatever follows")
    func unwalkedHeadersAreLimited() throws {
        let program = try TestProgram(limits: XDPLimits.unlimited.with(source: .init(packetsPerSecond: 1, burst: 3)))
        let chained = Packet.ipv6(source: client6, transport: .tcp(destinationPort: 443), extensions: sevenExtensions)
        let verdicts = try (0..<5).map { _ in try program.run(chained) }
        #expect(verdicts == [.pass, .pass, .pass, .drop, .drop])
        #expect(try program.counters()["pass/unsupported"] == 3, "a pass still says the headers were not walked")
        #expect(try program.counters()["drop/rate_ip"] == 2)
        let esp = Packet.ipv6(source: client6, transport: .raw(protocolNumber: 50, payload: [UInt8](repeating: 0, count: 16)))
        #expect(try program.run(esp) == .drop, "ESP from the same source shares its bucket")

        let subnets = try TestProgram(limits: XDPLimits.unlimited.with(subnet: .init(packetsPerSecond: 1, burst: 2)))
        let neighbours = try (1...3).map { host -> ProgramTestRun.Action? in
            var address = client6
            address[15] = UInt8(host)
            return try subnets.run(Packet.ipv6(source: address, transport: .tcp(destinationPort: 443), extensions: sevenExtensions))
        }
        #expect(neighbours == [.pass, .pass, .drop])
        #expect(try subnets.counters()["drop/rate_subnet"] == 1)
    }

    @Test("sources of one /24 share the subnet bucket; another /24 does not")
    func subnetRate() throws {
        let program = try TestProgram(limits: XDPLimits.unlimited.with(subnet: .init(packetsPerSecond: 1, burst: 3)))
        let verdicts = try (1...4).map { host in
            try program.run(Packet.ipv4(source: [192, 0, 2, UInt8(host)], transport: .tcp(destinationPort: 443)))
        }
        #expect(verdicts == [.pass, .pass, .pass, .drop])
        #expect(try program.counters()["drop/rate_subnet"] == 1)
        #expect(try program.maps.droppedPackets(address: [192, 0, 2, 0], subnet: true) == 1)
        // Another /24 starts afresh: seen once it holds no bucket, seen again it has its own.
        let neighbour = Packet.ipv4(source: [192, 0, 3, 1], transport: .tcp(destinationPort: 443))
        #expect(try program.run(neighbour) == .pass)
        #expect(try program.maps.entries(of: program.maps.subnets) == 1)
        #expect(try program.run(neighbour) == .pass)
        #expect(try program.maps.entries(of: program.maps.subnets) == 2)
    }

    @Test("the IPv6 subnet prefix is configurable: /48 groups what /64 separates")
    func ipv6Prefix() throws {
        for (prefix, expected) in [(64, ProgramTestRun.Action.pass), (48, .drop)] {
            let program = try TestProgram(limits: XDPLimits.unlimited.with(subnet: .init(packetsPerSecond: 1, burst: 1),
                                                                           ipv6SubnetPrefix: prefix))
            #expect(try program.run(Packet.ipv6(source: Packet.ipv6Address("2001:db8:1:1::1"), transport: .tcp(destinationPort: 443))) == .pass)
            #expect(try program.run(Packet.ipv6(source: Packet.ipv6Address("2001:db8:1:2::1"), transport: .tcp(destinationPort: 443))) == expected,
                    "prefix /\(prefix)")
        }
    }

    @Test("limits change in place: a new config takes effect on the next packet, no reload")
    func configInPlace() throws {
        let program = try TestProgram(limits: .unlimited)
        let packet = Packet.ipv4(source: client, transport: .tcp(destinationPort: 8443))
        #expect(try program.run(packet) == .pass)
        var limits = XDPLimits.unlimited.with(source: .init(packetsPerSecond: 1, burst: 1))
        limits.protectedPorts = [8443]
        try program.maps.apply(limits, allowlist: [])
        #expect(try program.run(packet) == .pass)
        #expect(try program.run(packet) == .drop)
        #expect(try program.maps.limits() == limits)
    }
}
