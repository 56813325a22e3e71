import Foundation
import GatewardenBenchBPF
import GatewardenCore
import GatewardenDataPlane
import GatewardenKernel
import Testing

/// The SYN-ACK the XDP program answers a SYN with: read back from BPF_PROG_TEST_RUN's output frame.
struct SynAck {
    var frame: [UInt8]
    /// Where the IP header starts (after the VLAN tags).
    var l3: Int
    var ipv4: Bool

    var l4: Int { l3 + (ipv4 ? 20 : 40) }
    var sourceMAC: [UInt8] { Array(frame[6..<12]) }
    var destinationMAC: [UInt8] { Array(frame[0..<6]) }
    var sourceAddress: [UInt8] { ipv4 ? Array(frame[l3 + 12..<l3 + 16]) : Array(frame[l3 + 8..<l3 + 24]) }
    var destinationAddress: [UInt8] { ipv4 ? Array(frame[l3 + 16..<l3 + 20]) : Array(frame[l3 + 24..<l3 + 40]) }
    var sourcePort: UInt16 { word16(l4) }
    var destinationPort: UInt16 { word16(l4 + 2) }
    var sequence: UInt32 { word32(l4 + 4) }
    var acknowledgement: UInt32 { word32(l4 + 8) }
    var headerLength: Int { Int(frame[l4 + 12] >> 4) * 4 }
    var flags: UInt8 { frame[l4 + 13] }
    var window: UInt16 { word16(l4 + 14) }
    var options: [UInt8] { Array(frame[l4 + 20..<l4 + headerLength]) }
    /// Bytes the IP header says the packet holds, from the IP header on.
    var ipLength: Int { ipv4 ? Int(word16(l3 + 2)) : 40 + Int(word16(l3 + 4)) }

    var ipHeaderChecksumValid: Bool { !ipv4 || onesComplementSum(Array(frame[l3..<l3 + 20])) == 0xffff }
    var tcpChecksumValid: Bool {
        let segment = Array(frame[l4..<l3 + ipLength])
        let length = UInt32(segment.count)
        let pseudo = sourceAddress + destinationAddress
            + (ipv4 ? [0, 6] + bigEndian(UInt16(length)) : bigEndian(length) + [0, 0, 0, 6])
        return onesComplementSum(pseudo + segment) == 0xffff
    }

    /// The options by kind: MSS value, window scale, SACK-permitted, (tsval, tsecr).
    var mss: UInt16? { option(2).map { UInt16($0[0]) << 8 | UInt16($0[1]) } }
    var windowScale: UInt8? { option(3)?.first }
    var sackPermitted: Bool { option(4) != nil }
    var timestamps: (value: UInt32, echo: UInt32)? {
        option(8).map { bytes in
            let value = bytes[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            return (value, bytes[4..<8].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        }
    }

    private func option(_ wanted: UInt8) -> [UInt8]? {
        var index = 0
        let options = self.options
        while index < options.count {
            let kind = options[index]
            if kind == 0 { return nil }
            if kind == 1 { index += 1; continue }
            guard index + 1 < options.count else { return nil }
            let size = Int(options[index + 1])
            guard size >= 2, index + size <= options.count else { return nil }
            if kind == wanted { return Array(options[index + 2..<index + size]) }
            index += size
        }
        return nil
    }

    private func word16(_ at: Int) -> UInt16 { UInt16(frame[at]) << 8 | UInt16(frame[at + 1]) }
    private func word32(_ at: Int) -> UInt32 { frame[at..<at + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
}

/// The kernel's own check of a returning cookie (`bpf/bench/syncookie_check.c`), as nf_synproxy makes it.
final class CookieChecker: @unchecked Sendable {
    let object: BPFObject
    let runner: ProgramTestRun

    init() throws {
        object = try BPFObject(elf: EmbeddedBPF.syncookieCheck.bytes, name: "syncookie_check")
        try object.load()
        runner = ProgramTestRun(programFD: try object.programDescriptor(named: "syncookie_check"))
    }

    /// Whether the ACK a client sends back for `synAck` (to its SYN of sequence `sequence`) carries a valid cookie.
    func accepts(ackTo synAck: SynAck, clientSequence sequence: UInt32) throws -> Bool {
        let ack = TCPSegment(sourcePort: synAck.destinationPort, destinationPort: synAck.sourcePort, flags: TCPSegment.ack,
                             sequence: sequence &+ 1, acknowledgement: synAck.sequence &+ 1)
        let frame = synAck.ipv4
            ? Packet.ipv4(source: synAck.destinationAddress, destination: synAck.sourceAddress, transport: .segment(ack))
            : Packet.ipv6(source: synAck.destinationAddress, destination: synAck.sourceAddress, transport: .segment(ack))
        let action = try runner.run(packet: frame).action
        #expect(action != .aborted, "the checker could not read the ACK")
        return action == .pass
    }
}

/// A network namespace of the test's own (no forwarding, as a fresh one starts): BPF_PROG_TEST_RUN
/// runs a packet as received on its loopback, so the program's routing check sees this namespace.
final class ScratchNamespace {
    let name: String
    let namespace: NetworkNamespace
    private nonisolated(unsafe) static var counter = 0
    private static let lock = NSLock()

    init() throws {
        let serial = Self.lock.withLock { Self.counter += 1; return Self.counter }
        name = "gwt-syn-\(getpid())-\(serial)"
        try Command.run(["ip", "netns", "add", name])
        namespace = try NetworkNamespace(named: name)
        try Command.run(["ip", "-n", name, "link", "set", "lo", "up"])
    }

    func run(_ arguments: [String]) throws { try Command.run(["ip", "netns", "exec", name] + arguments) }

    deinit { _ = try? Command.run(["ip", "netns", "del", name], check: false) }
}

private let client: [UInt8] = [192, 0, 2, 7]
private let server: [UInt8] = [192, 0, 2, 1]
private let client6 = Packet.ipv6Address("2001:db8:1:2::7")
private let server6 = Packet.ipv6Address("2001:db8::1")
private let cookies = XDPLimits.SynCookies(ipv4MSS: 1460, ipv6MSS: 1440, windowScale: 7, timestamps: true,
                                           selectiveAcknowledgements: true, interfaceMAC: Packet.gatewayMAC)

private func syn(options: [UInt8] = TCPSegment.linuxSYNOptions(tsval: 0x1234_5678), sequence: UInt32 = 0xdead_beef,
                 port: UInt16 = 443, flags: UInt8 = TCPSegment.syn, payload: [UInt8] = []) -> TCPSegment {
    TCPSegment(destinationPort: port, flags: flags, sequence: sequence, options: options, payload: payload)
}

@Suite("SYN cookies in XDP: the SYN-ACK, its cookie and options, and the SYNs left to nftables",
       .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct SynCookieTests {
    let scratch: ScratchNamespace
    let checker: CookieChecker

    init() throws {
        scratch = try ScratchNamespace()
        checker = try CookieChecker()
    }

    private func program(_ limits: XDPLimits = XDPLimits.unlimited, synCookies: XDPLimits.SynCookies? = cookies,
                         allowlist: [AddressPrefix] = []) throws -> TestProgram {
        var limits = limits
        limits.synCookies = synCookies
        return try TestProgram(limits: limits, allowlist: allowlist)
    }

    private func run(_ program: TestProgram, _ frame: [UInt8]) throws -> ProgramTestRun.Result {
        try scratch.namespace.perform { try program.runner.run(packet: frame) }
    }

    @Test("a Linux SYN over IPv4 is answered in place: addresses swapped, a valid cookie, synproxy's options, checksums right")
    func ipv4LinuxSYN() throws {
        let program = try program()
        let frame = Packet.ipv4(source: client, transport: .segment(syn()))
        let result = try run(program, frame)
        #expect(result.action == .tx)
        let reply = SynAck(frame: result.packet, l3: 14, ipv4: true)
        #expect(reply.destinationMAC == Packet.clientMAC && reply.sourceMAC == Packet.gatewayMAC)
        #expect(reply.sourceAddress == server && reply.destinationAddress == client)
        #expect(reply.sourcePort == 443 && reply.destinationPort == 50000)
        #expect(reply.flags == TCPSegment.syn | TCPSegment.ack)
        #expect(reply.acknowledgement == 0xdead_beef &+ 1)
        #expect(reply.window == 0, "synproxy's SYN-ACK opens no window until the server answers")
        #expect(reply.ipHeaderChecksumValid && reply.tcpChecksumValid)
        #expect(result.packet.count == 14 + reply.ipLength, "the frame ends with the segment")
        #expect(reply.headerLength == 40)
        #expect(reply.mss == 1460 && reply.windowScale == 7 && reply.sackPermitted)
        let timestamps = try #require(reply.timestamps)
        #expect(timestamps.echo == 0x1234_5678)
        // nf_synproxy's timestamp cookie: the client's window scale in the low 4 bits, SACK in bit 4.
        #expect(timestamps.value & 0x3f == 7 | 1 << 4)
        #expect(try checker.accepts(ackTo: reply, clientSequence: 0xdead_beef))
        #expect(try !checker.accepts(ackTo: reply, clientSequence: 0xdead_beef &+ 1000), "a cookie checks the client's sequence")
        #expect(try program.counters()["syncookie/within_limit"] == 1)
        #expect(try program.counters()["pass/within_limit"] == 0)
    }

    @Test("IPv6 in two VLAN tags: tags kept, IPv6 MSS, a valid cookie")
    func ipv6InVLANs() throws {
        let program = try program()
        let frame = Packet.ipv6(source: client6, transport: .segment(syn()), vlans: [100, 10])
        let result = try run(program, frame)
        #expect(result.action == .tx)
        #expect(Array(result.packet[12..<22]) == Array(frame[12..<22]), "VLAN tags and EtherType kept")
        let reply = SynAck(frame: result.packet, l3: 22, ipv4: false)
        #expect(reply.sourceAddress == server6 && reply.destinationAddress == client6)
        #expect(reply.tcpChecksumValid && reply.mss == 1440 && reply.windowScale == 7)
        #expect(result.packet[22 + 7] == 64, "hop limit")
        let untagged = SynAck(frame: Array(result.packet[0..<12]) + Array(result.packet[20...]), l3: 14, ipv4: false)
        #expect(try checker.accepts(ackTo: untagged, clientSequence: 0xdead_beef))
    }

    @Test("the options follow the SYN's as synproxy's do: none without MSS, no scale or SACK without timestamps")
    func optionsFollowTheSYN() throws {
        let program = try program()
        func answer(_ options: [UInt8]) throws -> SynAck {
            let result = try run(program, Packet.ipv4(source: client, transport: .segment(syn(options: options))))
            #expect(result.action == .tx)
            let reply = SynAck(frame: result.packet, l3: 14, ipv4: true)
            #expect(reply.tcpChecksumValid && reply.ipHeaderChecksumValid)
            #expect(try checker.accepts(ackTo: reply, clientSequence: 0xdead_beef))
            return reply
        }
        let bare = try answer([])
        #expect(bare.headerLength == 20 && bare.mss == nil)
        let mssOnly = try answer(TCPSegment.mss(1200) + TCPSegment.windowScale(9) + TCPSegment.sackPermitted)
        #expect(mssOnly.mss == 1460 && mssOnly.windowScale == nil && !mssOnly.sackPermitted && mssOnly.timestamps == nil)
        let noScale = try answer(TCPSegment.mss(1460) + TCPSegment.timestamps(42))
        #expect(noScale.windowScale == nil && !noScale.sackPermitted)
        #expect(noScale.timestamps.map { $0.value & 0x3f } == 0xf && noScale.timestamps?.echo == 42)
        let bigScale = try answer(TCPSegment.linuxSYNOptions(tsval: 1, windowScale: 20))
        #expect(bigScale.timestamps.map { $0.value & 0xf } == 14, "a scale above 14 is carried as 14, as synproxy clamps it")
        let nops = try answer(Array(repeating: 1, count: 40))
        #expect(nops.headerLength == 20, "forty NOPs: the longest option list, nothing offered")
        // Kinds of 16 and above (TCP Fast Open 34, MD5 19 is below) are none of the four read: they must not
        // stand in for one (34 & 15 is 2, the MSS).
        let fastOpen = try answer([2, 4, 0x05, 0xb4, 34, 2, 1, 1])
        #expect(fastOpen.mss == 1460, "the MSS survives a TCP Fast Open option after it")
    }

    @Test("the load's settings: no timestamps, no SACK, no window scaling on the server")
    func serverSettings() throws {
        let program = try program(synCookies: .init(ipv4MSS: 1400, ipv6MSS: 1380, windowScale: nil, timestamps: false,
                                                    selectiveAcknowledgements: false, interfaceMAC: Packet.gatewayMAC))
        let result = try run(program, Packet.ipv4(source: client, transport: .segment(syn())))
        #expect(result.action == .tx)
        let reply = SynAck(frame: result.packet, l3: 14, ipv4: true)
        #expect(reply.mss == 1400 && reply.timestamps == nil && reply.windowScale == nil && !reply.sackPermitted)
        #expect(reply.headerLength == 24 && reply.tcpChecksumValid)
    }

    @Test("SYNs XDP leaves to nftables' synproxy pass untouched", arguments: [
        ("data in the SYN", Packet.ipv4(source: client, transport: .segment(syn(payload: [1, 2, 3, 4])))),
        ("an option running past the header", Packet.ipv4(source: client, transport: .segment(syn(options: [1, 1, 8, 10, 0, 0, 0, 0])))),
        ("an option of length 1", Packet.ipv4(source: client, transport: .segment(syn(options: [2, 1, 0, 0])))),
        ("an option of length 0", Packet.ipv4(source: client, transport: .segment(syn(options: [3, 0, 0, 0])))),
        ("IPv4 options", Packet.ipv4(source: client, transport: .segment(syn()), options: [1, 1, 1, 0])),
        ("IPv6 hop-by-hop header", Packet.ipv6(source: client6, transport: .segment(syn()), extensions: [.hopByHop])),
        ("SYN with ACK", Packet.ipv4(source: client, transport: .segment(syn(flags: TCPSegment.syn | TCPSegment.ack)))),
        ("SYN with RST", Packet.ipv4(source: client, transport: .segment(syn(flags: TCPSegment.syn | TCPSegment.rst)))),
        ("SYN with FIN", Packet.ipv4(source: client, transport: .segment(syn(flags: TCPSegment.syn | TCPSegment.fin)))),
        ("a plain ACK", Packet.ipv4(source: client, transport: .segment(syn(flags: TCPSegment.ack)))),
        ("an unprotected port", Packet.ipv4(source: client, transport: .segment(syn(port: 22)))),
        ("to a multicast address", Packet.ipv4(source: client, destination: [224, 0, 0, 1], transport: .segment(syn()))),
        ("a first fragment", Packet.ipv4(source: client, transport: .segment(syn()), moreFragments: true)),
        ("a wrong IPv4 header checksum", { var frame = Packet.ipv4(source: client, transport: .segment(syn())); frame[24] ^= 0xff; return frame }()),
        ("data offset past the frame", Packet.ipv4(source: client, transport: .segment({ var s = syn(options: []); s.dataOffsetWords = 15; return s }()))),
        // Frames the kernel would never answer: for another host's MAC (a bridge floods unknown unicast), to
        // a group address, from one (the reply would reach a whole segment), from martian sources.
        ("to another host's MAC", { var frame = Packet.ipv4(source: client, transport: .segment(syn())); frame[5] = 9; return frame }()),
        ("to the broadcast MAC", { var frame = Packet.ipv4(source: client, transport: .segment(syn())); frame.replaceSubrange(0..<6, with: [UInt8](repeating: 0xff, count: 6)); return frame }()),
        ("from a group MAC", { var frame = Packet.ipv4(source: client, transport: .segment(syn())); frame[6] |= 1; return frame }()),
        ("from 127.0.0.1", Packet.ipv4(source: [127, 0, 0, 1], transport: .segment(syn()))),
        ("from 0.0.0.0", Packet.ipv4(source: [0, 0, 0, 0], transport: .segment(syn()))),
        ("from a multicast address", Packet.ipv4(source: [224, 0, 0, 5], transport: .segment(syn()))),
        ("from 255.255.255.255", Packet.ipv4(source: [255, 255, 255, 255], transport: .segment(syn()))),
        ("from itself (land)", Packet.ipv4(source: server, transport: .segment(syn()))),
        ("IPv6 from a multicast address", Packet.ipv6(source: Packet.ipv6Address("ff02::1"), transport: .segment(syn()))),
        ("IPv6 from itself", Packet.ipv6(source: server6, transport: .segment(syn()))),
    ])
    func leftToTheKernel(_ name: String, _ frame: [UInt8]) throws {
        let program = try program()
        let result = try run(program, frame)
        #expect(result.action == .pass, "\(name)")
        #expect(result.packet == frame, "\(name): the frame was changed")
        #expect(try program.counters()["syncookie/within_limit"] == 0)
    }

    @Test("observe mode, an allowlisted source, cookies off: SYNs pass; over a limit: dropped, never answered")
    func modesAndLists() throws {
        let frame = Packet.ipv4(source: client, transport: .segment(syn()))
        var observing = XDPLimits.unlimited
        observing.observe = true
        #expect(try run(try program(observing), frame).action == .pass)
        #expect(try run(try program(synCookies: nil), frame).action == .pass)
        let allowed = try program(allowlist: [try AddressPrefix("192.0.2.0/24")])
        #expect(try run(allowed, frame).action == .pass)
        #expect(try allowed.counters()["pass/allowlist"] == 1)

        let limited = try program(XDPLimits.unlimited.with(source: .init(packetsPerSecond: 1, burst: 2)))
        let actions = try (0..<4).map { _ in try run(limited, frame).action }
        #expect(actions == [.tx, .tx, .drop, .drop])
        #expect(try limited.counters()["drop/rate_ip"] == 2)
    }

    @Test("a host that forwards answers for its own addresses only: a SYN it routes elsewhere passes")
    func forwardingHost() throws {
        try scratch.run(["sysctl", "-qw", "net.ipv4.conf.all.forwarding=1"])
        try scratch.run(["ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"])
        try scratch.run(["ip", "link", "set", "d0", "up"])
        try scratch.run(["ip", "link", "set", "d1", "up"])
        try scratch.run(["ip", "addr", "add", "203.0.113.1/24", "dev", "d0"])
        try scratch.run(["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"])
        try scratch.run(["ip", "route", "add", "198.51.100.0/24", "via", "203.0.113.2"])
        let program = try program()
        #expect(try run(program, Packet.ipv4(source: client, transport: .segment(syn()))).action == .tx)
        let routed = Packet.ipv4(source: client, destination: [198, 51, 100, 9], transport: .segment(syn()))
        #expect(try run(program, routed).action == .pass)
    }
}
