import CGatewardenABI
import Foundation
import GatewardenBPF
import GatewardenKernel
import GatewardenPolicy
import Testing
@testable import gatewarden
import GatewardenCore
import GatewardenDataPlane
import GatewardenLoad

/// A `load` that fails changes nothing in either layer: the program, the maps' contents and pins,
/// and the nftables table stay as they were, bans and counters included.
@Suite("A failed load changes nothing", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct FailedLoadTests {
    /// A policy in force (A) and the one a failed load tries (B), told apart in every map `load` writes.
    static let policyA = "protected_ports: [80, 443]\nallowlist: [203.0.113.0/24]\n"
    static let policyB = "protected_ports: [8080, 9443]\nallowlist: [198.18.0.0/15]\nblocklist:\n  entries: [198.51.100.0/24]\n"

    @Test("a re-attach that fails after the interface was re-created keeps bans, counters and the policy; a later load still has them")
    func failedReattachKeepsState() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        defer { _ = try? GatewardenBinary.run(["unload"] + arguments, check: false) }
        let files = try PolicyFiles([Self.policyA, Self.policyB])
        defer { files.remove() }
        // Observe mode leaves loose TCP tracking on; the failing enforce load turns it off before it fails.
        try GatewardenBinary.run(["load", "--observe", "--policy", files[0]] + arguments)
        try GatewardenBinary.run(["block", "\(lab.clientAddress)/32"] + arguments)
        let looseTracking = ["sysctl", "-n", "net.netfilter.nf_conntrack_tcp_loose"]
        #expect(try lab.inGateway(looseTracking).stdout == "1\n")
        _ = try lab.startUDPFlood(port: 443, seconds: 1, maximumPackets: 100).finish()
        let instance = try lab.gatewayInstance()
        let droppedBefore = try instance.maps().packets(action: "drop", reason: "blocklist")
        #expect(droppedBefore > 0)
        let before = try InstanceState(lab)

        // Re-created, and someone else's program got there first: native attach finds EBUSY.
        try lab.recreateLink()
        let object = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-failed-\(getpid()).o")
        try Data(EmbeddedBPF.gatewardenXdp.bytes).write(to: object)
        defer { try? FileManager.default.removeItem(at: object) }
        try lab.inGateway(["ip", "link", "set", "dev", lab.gatewayInterface, "xdpdrv", "obj", object.path, "sec", "xdp"])

        let refused = try GatewardenBinary.run(["load", "--policy", files[1]] + arguments, check: false)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("which is not Gatewarden's"), "stderr: \(refused.stderr)")
        #expect(!refused.stderr.contains("undoing the failed load"), "stderr: \(refused.stderr)")
        let after = try InstanceState(lab)
        #expect(after.bans == before.bans, "the ban is still pinned")
        #expect(try instance.maps().packets(action: "drop", reason: "blocklist") == droppedBefore, "counters kept")
        #expect(after.configuration == before.configuration, "gw_config as policy A left it")
        #expect(after.ports == before.ports && after.allowlist == before.allowlist)
        #expect(after.table == before.table, "the nftables table as policy A left it")
        #expect(try lab.inGateway(looseTracking).stdout == "1\n", "the sysctl put back")
        let status = try GatewardenBinary.run(["status", "--netns", lab.gateway]).stdout
        #expect(status.contains("program:   NOT ATTACHED"), "status: \(status)")
        #expect(status.contains("blocklist: \(lab.clientAddress)/32"), "status: \(status)")
        let exporter = try ExporterProcess(arguments: ["--netns", lab.gateway])
        let metrics = try exporter.get()
        exporter.stop()
        #expect(metrics.contains(#"gatewarden_up{collector="xdp"} 1"#))
        #expect(metrics.contains(#"gatewarden_xdp_attached{interface="\#(lab.gatewayInterface)",mode="generic"} 0"#), "\(metrics)")

        let forced = try GatewardenBinary.run(["load", "--force", "--policy", files[1]] + arguments)
        #expect(forced.stderr.contains("detached XDP program id"))
        #expect(try instance.link.info().interfaceIndex != 0)
        #expect(try InstanceState(lab).bans.isSuperset(of: before.bans), "the ban carried over to the new attachment")
        _ = try lab.startUDPFlood(port: 443, seconds: 1, maximumPackets: 100).finish()
        #expect(try instance.maps().packets(action: "drop", reason: "blocklist") > droppedBefore, "and is enforced")
    }

    @Test("a load refused for want of room in the blocklist leaves both layers as they were")
    func refusedMidwayChangesNothing() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        defer { _ = try? GatewardenBinary.run(["unload"] + arguments, check: false) }
        let oversized = "allowlist:\n" + (0...XDPMaps.allowlistCapacity).map { "  - 10.\($0 >> 16).\($0 >> 8 & 255).\($0 & 255)/32\n" }.joined()
        let files = try PolicyFiles([Self.policyA, Self.policyB, oversized])
        defer { files.remove() }
        try GatewardenBinary.run(["load", "--policy", files[0]] + arguments)
        // Manual bans fill the blocklist: the policy's one more ban finds no room.
        let blocklist = try lab.gatewayInstance().maps().blocklist
        var manual = gw_block_entry()
        manual.origins = 1 << GW_BAN_MANUAL.rawValue
        for index in 0..<Int(blocklist.info.maxEntries) {
            try blocklist.update(manual, at: try AddressPrefix("100.\(64 + index >> 16).\(index >> 8 & 255).\(index & 255)/32").lpmKey)
        }
        let before = try InstanceState(lab)
        let programBefore = try lab.gatewayInstance().link.info().programID

        let refused = try GatewardenBinary.run(["load", "--policy", files[1]] + arguments, check: false)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("the blocklist has room for"), "stderr: \(refused.stderr)")
        let after = try InstanceState(lab)
        #expect(after.configuration == before.configuration, "gw_config as it was")
        #expect(after.ports == before.ports, "XDP protects \(after.ports), was \(before.ports)")
        #expect(after.allowlist == before.allowlist)
        #expect(after.bans == before.bans)
        #expect(after.table == before.table)
        #expect(try lab.gatewayInstance().link.info().programID == programBefore)

        // Refused by the policy's own size before anything is touched, naming the file and key.
        let oversizedLoad = try GatewardenBinary.run(["load", "--policy", files[2]] + arguments, check: false)
        #expect(oversizedLoad.status != 0)
        #expect(oversizedLoad.stderr.contains("\(files[2]):") && oversizedLoad.stderr.contains("allowlist"), "stderr: \(oversizedLoad.stderr)")
        #expect(try InstanceState(lab) == before)
    }

    /// A failure after the program was swapped (the nftables transaction, say) cannot be brought about
    /// from outside once the dry run passed, so this drives the rollback `install` runs on any failure.
    @Test("undoing a load that had swapped the program puts the old one back, and what the maps held")
    func undoAfterProgramSwap() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        defer { _ = try? GatewardenBinary.run(["unload"] + arguments, check: false) }
        let files = try PolicyFiles([Self.policyA])
        defer { files.remove() }
        try GatewardenBinary.run(["load", "--policy", files[0]] + arguments)
        let layout = try lab.gatewayLayout()
        let link = XDPLink(pinPath: layout.link)
        let programBefore = try link.info().programID
        let before = try InstanceState(lab)

        var rollback = try InstallRollback(layout: layout, mapNames: Deployment.mapNames())
        let object = try BPFObject(elf: Deployment.program.bytes, name: Deployment.programName)
        try object.pinMaps(at: layout.map)
        try object.load()
        let policyB = try PolicyParser.parse(yaml: Self.policyB, file: "B.yaml")
        try XDPMaps(object: object).apply(policyB.xdpLimits, allowlist: policyB.allowlist)
        try rollback.replacing(link)
        try link.replaceProgram(with: object.programDescriptor(named: Deployment.programName))
        #expect(try link.info().programID != programBefore)
        #expect(try InstanceState(lab).ports == [8080, 9443])

        rollback.undo()
        #expect(try link.info().programID == programBefore)
        #expect(try InstanceState(lab) == before)
    }
}

/// What `load` writes, read back from the pins and from nftables.
private struct InstanceState: Equatable {
    var configuration: [UInt8]
    var ports: [UInt16]
    var allowlist: Set<AddressPrefix>
    var bans: Set<AddressPrefix>
    var table: String

    init(_ lab: LabNetwork) throws {
        let maps = try lab.gatewayInstance().maps()
        let value = try #require(try maps.config.value(at: UInt32(0), as: gw_config.self))
        configuration = withUnsafeBytes(of: value) { Array($0) }
        ports = try #require(try maps.limits()).protectedPorts
        allowlist = Set(try maps.allowlist.keys(as: gw_lpm_key.self).map(AddressPrefix.init(lpmKey:)))
        bans = Set(try maps.bans().map(\.prefix))
        // A ban's remaining time ticks between two listings; its presence and timeout are what count.
        table = try lab.inGateway(["nft", "list", "table", "inet", "gatewarden"]).stdout
            .replacingOccurrences(of: #" expires [0-9dhms]+"#, with: "", options: .regularExpression)
    }
}

/// Policy files in the temporary folder, by index.
private struct PolicyFiles {
    let paths: [String]

    init(_ contents: [String]) throws {
        paths = try contents.enumerated().map { index, text in
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-failed-load-\(getpid())-\(index).yaml").path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
    }

    subscript(index: Int) -> String { paths[index] }

    func remove() {
        for path in paths { try? FileManager.default.removeItem(atPath: path) }
    }
}
