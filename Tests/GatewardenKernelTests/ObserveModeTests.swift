import CGatewardenABI
import Foundation
import GatewardenKernel
import Testing
import GatewardenCore
import GatewardenDataPlane

/// Observe mode in the XDP program (gw_config.observe): a packet over a rate limit is counted as
/// `would_drop` and passed, with the same bucket and offender bookkeeping as a drop; bans still drop.
@Suite("XDP observe mode (BPF_PROG_TEST_RUN)", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct ObserveModeTests {
    private let flooder: [UInt8] = [192, 0, 2, 7]

    private func observing(_ limits: XDPLimits) -> XDPLimits {
        var copy = limits
        copy.observe = true
        return copy
    }

    @Test("a single-source flood: zero drops, would_drop equal to what enforce mode drops, the source in the top offenders")
    func floodWouldDropWhatEnforceDrops() throws {
        let limits = XDPLimits.unlimited.with(source: .init(packetsPerSecond: 1000, burst: 100))
        let enforcing = try TestProgram(limits: limits)
        let observing = try TestProgram(limits: observing(limits))
        let packet = Packet.ipv4(source: flooder, transport: .tcp(destinationPort: 443))

        // The same packets at the same times: each one goes to both programs back to back, paced at
        // 3x the rate for 1.5 s, so both see the same arrivals (within a clock tick of each other).
        let total = 4500, period: UInt64 = 1_000_000_000 / 3000
        var enforceVerdicts: [ProgramTestRun.Action: Int] = [:], observeVerdicts: [ProgramTestRun.Action: Int] = [:]
        let start = Flood.monotonicNanoseconds()
        for k in 0..<total {
            while Flood.monotonicNanoseconds() < start + UInt64(k) * period {}
            enforceVerdicts[try #require(try enforcing.run(packet)), default: 0] += 1
            observeVerdicts[try #require(try observing.run(packet)), default: 0] += 1
        }

        let enforced = try enforcing.counters(), observed = try observing.counters()
        let dropped = try #require(enforced["drop/rate_ip"])
        let wouldDrop = try #require(observed["would_drop/rate_ip"])
        print("observe mode: \(total) packets at 3x the rate; enforce dropped \(dropped), observe would have dropped "
            + "\(wouldDrop) (ratio \(String(format: "%.4f", Double(wouldDrop) / Double(max(dropped, 1)))))")
        #expect(dropped > 1000, "the flood is over the limit in enforce mode")
        #expect(observeVerdicts[.drop] == nil, "observe mode drops nothing: \(observeVerdicts)")
        #expect(observed.filter { $0.key.hasPrefix("drop/") }.values.reduce(0, +) == 0)
        #expect(observed["pass/within_limit"]! + wouldDrop == UInt64(total))
        #expect(Double(wouldDrop) >= Double(dropped) * 0.9 && Double(wouldDrop) <= Double(dropped) * 1.1,
                "would_drop \(wouldDrop) vs enforce's drops \(dropped)")
        #expect(enforced["would_drop/rate_ip"] == 0, "enforce mode never counts would_drop")
        #expect(enforceVerdicts[.drop] == Int(dropped))

        // The bucket's count and the offender entry are kept as for a drop: top-K shows the source.
        #expect(try observing.maps.droppedPackets(address: flooder) == wouldDrop)
        var offenders: [(gw_offender_key, UInt64)] = []
        try observing.maps.forEachOffender { offenders.append(($0, $1)) }
        let key = XDPMaps.key(address: flooder)
        let entry = offenders.first { withUnsafeBytes(of: $0.0.addr) { Array($0) } == withUnsafeBytes(of: key) { Array($0) } }
        let bound = try #require(entry?.1, "the flooder is registered as an offender")
        #expect(bound <= wouldDrop && wouldDrop < 2 * bound)
    }

    @Test("the per-subnet limit counts would_drop as rate_subnet")
    func subnetWouldDrop() throws {
        let program = try TestProgram(limits: observing(XDPLimits.unlimited.with(subnet: .init(packetsPerSecond: 1, burst: 3))))
        let verdicts = try (1...6).map { host in
            try program.run(Packet.ipv4(source: [192, 0, 2, UInt8(host)], transport: .tcp(destinationPort: 443)))
        }
        #expect(verdicts.allSatisfy { $0 == .pass })
        let counters = try program.counters()
        #expect(counters["would_drop/rate_subnet"] == 3)
        #expect(counters["drop/rate_subnet"] == 0)
        #expect(try program.maps.droppedPackets(address: [192, 0, 2, 0], subnet: true) == 3)
    }

    @Test("bans still drop in observe mode; would_drop has no blocklist counter")
    func bansStillDrop() throws {
        let program = try TestProgram(limits: observing(XDPLimits.unlimited.with(source: .init(packetsPerSecond: 1, burst: 1))))
        try program.maps.block(try AddressPrefix("198.51.100.0/24"), for: .seconds(3600))
        #expect(try program.run(Packet.ipv4(source: [198, 51, 100, 9], transport: .tcp(destinationPort: 443))) == .drop)
        #expect(try program.run(Packet.ipv4(source: [198, 51, 100, 9], transport: .udp(destinationPort: 53))) == .drop)
        let counters = try program.counters()
        #expect(counters["drop/blocklist"] == 2)
        #expect(counters["would_drop/blocklist"] == nil, "not an exported pairing")
        #expect(try program.maps.limits()?.observe == true, "a list change keeps the mode (refreshListCounts)")
    }

    @Test("switching observe -> enforce -> observe in place takes effect on the next packet")
    func switchInPlace() throws {
        var limits = XDPLimits.unlimited.with(source: .init(packetsPerSecond: 1, burst: 3))
        limits.observe = true
        let program = try TestProgram(limits: limits)
        let packet = Packet.ipv4(source: flooder, transport: .tcp(destinationPort: 443))
        #expect(try (0..<5).map { _ in try program.run(packet) } == [.pass, .pass, .pass, .pass, .pass])
        #expect(try program.counters()["would_drop/rate_ip"] == 2)

        limits.observe = false
        try program.maps.apply(limits, allowlist: [])
        #expect(try program.maps.limits() == limits)
        #expect(try program.run(packet) == .drop)
        #expect(try program.counters()["drop/rate_ip"] == 1)

        limits.observe = true
        try program.maps.apply(limits, allowlist: [])
        #expect(try program.maps.limits()?.observe == true)
        #expect(try program.run(packet) == .pass)
        let counters = try program.counters()
        #expect(counters["would_drop/rate_ip"] == 3)
        #expect(counters["drop/rate_ip"] == 1)
        // One bucket throughout: the count is over both modes.
        #expect(try program.maps.droppedPackets(address: flooder) == 4)
    }
}
