import CGatewardenABI
import Foundation
import GatewardenKernel
import Testing
import GatewardenCore
import GatewardenDataPlane

/// Floods at multiples of the configured rate, from two CPUs at once: what passes must be
/// rate × duration + burst within ±10%, and no CPU's updates may be lost.
@Suite("Rate accuracy under cross-CPU floods", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct RateAccuracyTests {
    static let duration = Duration.seconds(2)

    /// rate × elapsed + burst, the GCRA allowance from an empty bucket.
    private func expected(_ rate: XDPLimits.Rate, _ result: Flood.Result) -> Double {
        Double(rate.packets) / Double(rate.periodSeconds) * result.elapsed + Double(rate.burst)
    }

    private func expectWithinTenPercent(_ result: Flood.Result, of expected: Double, _ label: String) {
        let ratio = Double(result.passed) / expected
        print("rate accuracy: \(label): sent \(result.sent), passed \(result.passed), expected \(Int(expected)) "
            + "over \(String(format: "%.3f", result.elapsed)) s, ratio \(String(format: "%.3f", ratio))")
        #expect(abs(ratio - 1) <= 0.10, "\(label): passed \(result.passed) of \(result.sent) in \(result.elapsed) s, expected \(Int(expected)) (ratio \(ratio))")
    }

    /// Every CPU that sent must have run the program: the flood really was concurrent.
    private func expectBothCPUsWorked(_ program: TestProgram) throws {
        let index = UInt32(GW_ACTION_PASS.rawValue * GW_REASON_COUNT.rawValue + GW_REASON_WITHIN_LIMIT.rawValue)
        let perCPU = try program.maps.statistics.perCPUValues(at: index, as: gw_counter.self) ?? []
        let cpus = min(2, ProcessInfo.processInfo.activeProcessorCount)
        #expect(perCPU.prefix(cpus).allSatisfy { $0.packets > 0 }, "per-CPU passes: \(perCPU.map(\.packets))")
    }

    @Test("one source flooding at 2x and 10x its rate", arguments: [2.0, 10.0])
    func singleSource(multiple: Double) throws {
        let rate = XDPLimits.Rate(packetsPerSecond: 1000, burst: 100)
        let program = try TestProgram(limits: XDPLimits.unlimited.with(source: rate))
        let packet = Packet.ipv4(source: [192, 0, 2, 7], transport: .tcp(destinationPort: 443))
        let result = try Flood(program: program, packets: [packet], packetsPerSecond: 1000 * multiple,
                               duration: Self.duration).run()
        expectWithinTenPercent(result, of: expected(rate, result), "\(multiple)x")
        #expect(try program.counters()["drop/rate_ip"] == UInt64(result.dropped))
        try expectBothCPUsWorked(program)
    }

    @Test("50 sources in one /24, each under the per-source limit, are limited together")
    func subnetOfManySources() throws {
        let subnetRate = XDPLimits.Rate(packetsPerSecond: 1000, burst: 100)
        let program = try TestProgram(limits: XDPLimits.unlimited.with(
            source: .init(packetsPerSecond: 200, burst: 100), subnet: subnetRate))
        let packets = (1...50).map { Packet.ipv4(source: [198, 51, 100, UInt8($0)], transport: .udp(destinationPort: 443)) }
        // 5000 packets/s in all: 100/s per source, half the per-source limit; 5x the subnet's.
        let result = try Flood(program: program, packets: packets, packetsPerSecond: 5000, duration: Self.duration).run()
        expectWithinTenPercent(result, of: expected(subnetRate, result), "/24 of 50 sources")
        let counters = try program.counters()
        #expect(counters["drop/rate_ip"] == 0)
        #expect(counters["drop/rate_subnet"] == UInt64(result.dropped))
        try expectBothCPUsWorked(program)
    }

    @Test("many IPv6 addresses in one /64 are limited together")
    func ipv6Prefix() throws {
        let subnetRate = XDPLimits.Rate(packetsPerSecond: 1000, burst: 100)
        let program = try TestProgram(limits: XDPLimits.unlimited.with(
            source: .init(packetsPerSecond: 200, burst: 100), subnet: subnetRate))
        var generator = SystemRandomNumberGenerator()
        let packets = (0..<200).map { _ -> [UInt8] in
            let interfaceID = (0..<8).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let source = Array(Packet.ipv6Address("2001:db8:77:1::").prefix(8)) + interfaceID
            return Packet.ipv6(source: source, transport: .tcp(destinationPort: 443))
        }
        let result = try Flood(program: program, packets: packets, packetsPerSecond: 5000, duration: Self.duration).run()
        expectWithinTenPercent(result, of: expected(subnetRate, result), "IPv6 /64 of 200 addresses")
        #expect(try program.counters()["drop/rate_ip"] == 0)
        try expectBothCPUsWorked(program)
    }
}
