import Foundation
import GatewardenBPF
import GatewardenKernel
import Testing
import GatewardenCore
import GatewardenDataPlane

/// Gatewarden's XDP program loaded into the kernel without attaching or pinning anything:
/// private maps, driven through BPF_PROG_TEST_RUN. Released (and so unloaded) with the value.
final class TestProgram: @unchecked Sendable {
    let object: BPFObject
    let maps: XDPMaps
    let runner: ProgramTestRun

    init(limits: XDPLimits = .default, allowlist: [AddressPrefix] = [],
         sourceCapacity: UInt32 = 65536, subnetCapacity: UInt32 = 16384) throws {
        object = try BPFObject(elf: EmbeddedBPF.gatewardenXdp.bytes, name: XDPProgram.name)
        // LRU maps are preallocated: small ones keep each test's load fast and light.
        try object.setMaxEntries(sourceCapacity, ofMap: XDPMaps.Name.sources)
        try object.setMaxEntries(subnetCapacity, ofMap: XDPMaps.Name.subnets)
        try object.load()
        maps = try XDPMaps(object: object)
        runner = ProgramTestRun(programFD: try object.programDescriptor(named: XDPProgram.name))
        try maps.apply(limits, allowlist: allowlist)
    }

    func run(_ packet: [UInt8]) throws -> ProgramTestRun.Action? {
        try runner.run(packet: packet).action
    }

    /// Every (action, reason) packet count, keyed "action/reason".
    func counters() throws -> [String: UInt64] {
        Dictionary(uniqueKeysWithValues: try maps.readStatistics().map { ("\($0.action)/\($0.reason)", $0.packets) })
    }
}

/// Limits with every rate off, for tests that look at one thing at a time.
extension XDPLimits {
    static let unlimited = XDPLimits(source: .init(packetsPerSecond: 0, burst: 0), subnet: .init(packetsPerSecond: 0, burst: 0),
                                     ipv4SubnetPrefix: 24, ipv6SubnetPrefix: 64, protectedPorts: [80, 443])

    func with(source: Rate? = nil, subnet: Rate? = nil, ipv6SubnetPrefix: Int? = nil) -> XDPLimits {
        var copy = self
        if let source { copy.source = source }
        if let subnet { copy.subnet = subnet }
        if let ipv6SubnetPrefix { copy.ipv6SubnetPrefix = ipv6SubnetPrefix }
        return copy
    }
}
