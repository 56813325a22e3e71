import Foundation
import GatewardenKernel
import Testing
import GatewardenDataPlane

private let offender: [UInt8] = [192, 0, 2, 7]

private func tcp443(from source: [UInt8]) -> [UInt8] {
    Packet.ipv4(source: source, transport: .tcp(destinationPort: 443))
}

/// A key gets a bucket only once it is seen twice within the longest emission interval
/// (gw_sightings in bpf/gatewarden_abi.h). These tests pin down both sides of that bargain:
/// the limits lose nothing, and one-packet sources do not fill the rate maps.
@Suite("XDP sightings: buckets only for keys that come back (BPF_PROG_TEST_RUN)",
       .enabled(if: Privileges.isRoot, Privileges.reason))
struct SightingTests {
    @Test("a source slower than every limit never gets a bucket; one that comes back is charged for both packets")
    func slowSourcesStayUntracked() throws {
        // 10/s: a 100 ms interval, so packets 250 ms apart conform to the limit without a bucket
        // (a stall only widens the gaps), while packets sent back to back stay well inside it.
        let program = try TestProgram(limits: XDPLimits.unlimited.with(source: .init(packetsPerSecond: 10, burst: 2)))
        for _ in 0..<3 {
            #expect(try program.run(tcp443(from: offender)) == .pass)
            usleep(250_000)
        }
        #expect(try program.maps.entries(of: program.maps.sources) == 0)
        #expect(try program.maps.sourceBucket(address: offender) == nil)

        // Back to back: the second packet creates the bucket as if the first had been charged,
        // so the burst of 2 is exact.
        let verdicts = try (0..<3).map { _ in try program.run(tcp443(from: offender)) }
        #expect(verdicts == [.pass, .pass, .drop])
        #expect(try program.maps.entries(of: program.maps.sources) == 1)
        #expect(try program.maps.droppedPackets(address: offender) == 1)
    }

    @Test("a spoofed flood of one-packet sources inserts almost no buckets; a tracked offender keeps its debt")
    func spoofedFloodKeepsOffenders() throws {
        // Capacities far below the flood, so inserting on first sight would show as full maps.
        let capacity: UInt32 = 4096
        let limits = XDPLimits.unlimited.with(source: .init(packetsPerSecond: 1, burst: 3),
                                              subnet: .init(packetsPerSecond: 1000, burst: 1000))
        let program = try TestProgram(limits: limits, sourceCapacity: capacity, subnetCapacity: capacity)
        // The subnet's first sighting is nobody's charge; the source's burst of 3 follows it.
        let opening = try (0..<8).map { _ in try program.run(tcp443(from: offender)) }
        #expect(opening == [.pass, .pass, .pass, .pass, .drop, .drop, .drop, .drop])
        let droppedBefore = try #require(try program.maps.droppedPackets(address: offender))

        let flood = 20_000
        var sent = 0, index: UInt32 = 0
        while sent < flood {
            index += 1
            let source = withUnsafeBytes(of: spread(index).bigEndian, Array.init)
            guard source[0..<3] != offender[0..<3] else { continue }
            #expect(try program.run(tcp443(from: source)) == .pass)
            sent += 1
        }

        // Only keys whose slot another key stamped within the window (1 s here) get tracked early:
        // about flood² / 2²¹, some 190 of 20,000. Inserting on first sight would be all of them.
        let subnetInserts = try program.maps.entries(of: program.maps.subnets)
        #expect(subnetInserts < flood / 10, "\(subnetInserts) subnet buckets for \(flood) one-packet sources")
        #expect(try program.maps.entries(of: program.maps.sources) < flood / 10)
        #expect(try program.maps.droppedPackets(address: offender) == droppedBefore, "the offender's bucket survived")
        #expect(try program.run(tcp443(from: offender)) == .drop, "and still holds its debt")
    }
}

/// murmur3's finaliser: a bijection, so distinct indexes give distinct, well-spread addresses.
private func spread(_ value: UInt32) -> UInt32 {
    var x = value
    x ^= x >> 16
    x &*= 0x85eb_ca6b
    x ^= x >> 13
    x &*= 0xc2b2_ae35
    x ^= x >> 16
    return x
}
