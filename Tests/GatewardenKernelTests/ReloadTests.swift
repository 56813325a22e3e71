import CGatewardenABI
import Foundation
import GatewardenBPF
import GatewardenKernel
import Testing

/// Reloads and bans on a real veth under traffic.
@Suite("Reload under a flood", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct ReloadTests {
    @Test("a reload mid-flood keeps counters and never lets a blocklisted source through")
    func reloadKeepsBansAndCounters() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        defer { _ = try? GatewardenBinary.run(["unload"] + arguments, check: false) }
        try GatewardenBinary.run(["load"] + arguments)
        try GatewardenBinary.run(["block", "\(lab.clientAddress)/32", "--for", "1h"] + arguments)
        try lab.addWitness(sources: [lab.clientAddress])
        let maps = try lab.gatewayInstance().maps()
        let programBefore = try lab.gatewayInstance().link.info().programID

        let flood = try lab.startUDPFlood(port: 443, seconds: 3)
        usleep(1_000_000)
        let droppedBeforeReload = try maps.packets(action: "drop", reason: "blocklist")
        try GatewardenBinary.run(["load", "--reload-program"] + arguments)
        let droppedAfterReload = try maps.packets(action: "drop", reason: "blocklist")
        let sent = flood.finish()
        // And after the flood, whenever it ended: a busy machine can take longer to reload than it lasts.
        #expect(try lab.startUDPFlood(port: 443, seconds: 1, maximumPackets: 100).finish() == 100)
        let droppedAtEnd = try maps.packets(action: "drop", reason: "blocklist")

        let programAfter = try lab.gatewayInstance().link.info().programID
        print("reload under flood: sent \(sent), blocklist drops \(droppedBeforeReload) before reload, "
            + "\(droppedAfterReload) after, \(droppedAtEnd) at end; program \(programBefore) -> \(programAfter)")
        #expect(programAfter != programBefore)
        #expect(droppedBeforeReload > 0)
        #expect(droppedAfterReload >= droppedBeforeReload, "counters survive the reload")
        #expect(droppedAtEnd >= droppedAfterReload + 100, "the new program keeps dropping")
        #expect(try lab.witnessPackets(from: lab.clientAddress) == 0, "no packet of the banned source reached the stack")

        // The witness does count once the ban is lifted: its zero above means something.
        try GatewardenBinary.run(["unblock", "\(lab.clientAddress)/32"] + arguments)
        let after = try lab.startUDPFlood(port: 443, seconds: 0.2, maximumPackets: 50)
        #expect(after.finish() == 50)
        #expect(try lab.witnessPackets(from: lab.clientAddress) > 0)
    }

    @Test("a load of the program already running re-applies the policy in place: same program, the new ports at once")
    func reapplyInPlace() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        defer { _ = try? GatewardenBinary.run(["unload"] + arguments, check: false) }
        let policy = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-inplace-\(getpid()).yaml")
        defer { try? FileManager.default.removeItem(at: policy) }
        try "protected_ports: [8080]\n".write(to: policy, atomically: true, encoding: .utf8)
        try GatewardenBinary.run(["load"] + arguments)
        let programBefore = try lab.gatewayInstance().link.info().programID

        let start = Date()
        let reload = try GatewardenBinary.run(["load", "--policy", policy.path] + arguments)
        print("re-apply in place: \(Date().timeIntervalSince(start)) s")
        #expect(reload.stdout.contains("re-applied the policy to the XDP program on"))
        #expect(try lab.gatewayInstance().link.info().programID == programBefore, "no program swap")
        #expect(try lab.gatewayInstance().maps().limits()?.protectedPorts == [8080], "the new ports are in force")

        let forced = try GatewardenBinary.run(["load", "--reload-program", "--policy", policy.path] + arguments)
        #expect(forced.stdout.contains("replaced the XDP program on"))
        #expect(try lab.gatewayInstance().link.info().programID != programBefore)
    }

    @Test("load after the interface was re-created replaces the severed link and keeps bans and counters")
    func recreatedInterface() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        defer { _ = try? GatewardenBinary.run(["unload"] + arguments, check: false) }
        try GatewardenBinary.run(["load"] + arguments)
        try GatewardenBinary.run(["block", "\(lab.clientAddress)/32"] + arguments)
        _ = try lab.startUDPFlood(port: 443, seconds: 1, maximumPackets: 100).finish()
        let instance = try lab.gatewayInstance()
        let droppedBefore = try instance.maps().packets(action: "drop", reason: "blocklist")
        #expect(droppedBefore > 0)

        try lab.recreateLink()
        #expect(try instance.link.info().interfaceIndex == 0, "the old attachment went with the interface")
        let reload = try GatewardenBinary.run(["load"] + arguments)
        #expect(reload.stderr.contains("was severed"))
        #expect(try instance.link.info().interfaceIndex != 0)
        _ = try lab.startUDPFlood(port: 443, seconds: 1, maximumPackets: 100).finish()
        #expect(try instance.maps().packets(action: "drop", reason: "blocklist") > droppedBefore, "the ban and its counter carried over")
    }

    @Test("status reports the program, mode, limits and bans")
    func status() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        defer { _ = try? GatewardenBinary.run(["unload"] + arguments, check: false) }
        let policy = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-status-\(getpid()).yaml")
        try "allowlist: [203.0.113.0/24]\n".write(to: policy, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: policy) }
        let loaded = try GatewardenBinary.run(["load", "--xdp-mode", "auto", "--policy", policy.path] + arguments)
        #expect(loaded.stderr.contains("is a veth: generic mode"), "stderr: \(loaded.stderr)")
        try GatewardenBinary.run(["block", "198.51.100.0/24", "--for", "30m"] + arguments)
        let text = try GatewardenBinary.run(["status", "--netns", lab.gateway]).stdout
        let programID = try lab.gatewayInstance().link.info().programID
        #expect(text.contains("program:   id \(programID)"))
        #expect(text.contains("generic mode (requested generic)"), "auto takes generic on a veth: \(text)")
        #expect(text.contains("SYNs:      answered by the XDP program with SYN cookies"), "\(text)")
        // Recorded as a generic request (chosen, not fallen back to): the mode-mismatch alert stays quiet.
        #expect(try lab.gatewayInstance().maps().loaderInfo()?.requested_mode == GW_XDP_MODE_GENERIC.rawValue)
        // A swapped program (here forced) keeps that record: the default's auto must not become a mismatch.
        try GatewardenBinary.run(["load", "--reload-program", "--policy", policy.path] + arguments)
        #expect(try lab.gatewayInstance().maps().loaderInfo()?.requested_mode == GW_XDP_MODE_GENERIC.rawValue)
        #expect(text.contains("per source 1000/s burst 2000, per subnet 500/s burst 1000"))
        #expect(text.contains("allowlist: 203.0.113.0/24"))
        #expect(text.contains("blocklist: 198.51.100.0/24 ("))
        #expect(text.contains("ports:     80, 443"))
    }

    @Test("load refuses to replace another XDP program unless --force")
    func foreignProgram() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        // "Not Gatewarden's" means attached over netlink rather than through Gatewarden's pinned
        // link: the embedded object attached by `ip` plays someone else's program.
        let object = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-foreign-\(getpid()).o")
        try Data(EmbeddedBPF.gatewardenXdp.bytes).write(to: object)
        defer { try? FileManager.default.removeItem(at: object) }
        try lab.inGateway(["ip", "link", "set", "dev", lab.gatewayInterface, "xdpdrv", "obj", object.path, "sec", "xdp"])
        defer { _ = try? GatewardenBinary.run(["unload"] + arguments, check: false) }

        let refused = try GatewardenBinary.run(["load"] + arguments, check: false)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("which is not Gatewarden's"))
        #expect(!FileManager.default.fileExists(atPath: try lab.gatewayLayout().directory))

        let forced = try GatewardenBinary.run(["load", "--force"] + arguments)
        #expect(forced.stderr.contains("detached XDP program id"))
        let ours = try lab.gatewayInstance().link.info()
        #expect(ours.interfaceIndex != 0)
    }
}
