import Foundation
import GatewardenKernel
import Testing
import GatewardenDataPlane

/// The whole path on the real kernel: load into a namespace, traffic from another, counters
/// read back through `gatewarden serve`, reload, unload.
@Suite("Load, serve and unload on the real kernel", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct WalkingSkeletonTests {
    @Test("SYNs from a client namespace move the XDP and nftables counters by exactly the packets sent")
    func countersMoveWithTraffic() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let layout = try lab.gatewayLayout()
        defer { _ = try? GatewardenBinary.run(["unload", "--interface", lab.gatewayInterface, "--netns", lab.gateway], check: false) }

        // Native mode: SYNs go on to nftables' synproxy, so both layers count them (in generic mode, the
        // default on veth, XDP answers them itself: SynCookieTests).
        try GatewardenBinary.run(["load", "--xdp-mode", "native", "--interface", lab.gatewayInterface, "--netns", lab.gateway])

        // The loader has exited: the program must be attached by its pinned link alone.
        let linkLine = try lab.inGateway(["ip", "-d", "link", "show", lab.gatewayInterface]).stdout
        #expect(linkLine.contains("prog/xdp id"))

        let exporter = try ExporterProcess(arguments: ["--netns", lab.gateway])
        defer { exporter.stop() }
        let xdpLabels = ["interface": lab.gatewayInterface, "action": "pass", "reason": "within_limit"]
        let ruleLabels = ["table": "gatewarden", "chain": "prerouting", "rule": "syn-to-protected-ports"]
        let before = try exporter.get()
        let xdpBefore = try #require(Scrape.value(before, "gatewarden_xdp_packets_total", xdpLabels))
        let nftBefore = try #require(Scrape.value(before, "gatewarden_nft_rule_packets_total", ruleLabels))

        // Datagrams for XDP (one packet each); SYNs for nftables' SYN counter (a handshake is more packets).
        let sent = 25
        try lab.sendUDP(perSource: sent)
        let afterDatagrams = try exporter.get()
        #expect(Scrape.value(afterDatagrams, "gatewarden_xdp_packets_total", xdpLabels) == xdpBefore + Double(sent))
        try lab.sendSYNs(count: sent, port: 443)

        let after = try exporter.get()
        #expect(Scrape.value(after, "gatewarden_nft_rule_packets_total", ruleLabels) == nftBefore + Double(sent))
        #expect(Scrape.value(after, "gatewarden_up", ["collector": "nftables"]) == 1)
        #expect(Scrape.value(after, "gatewarden_up", ["collector": "xdp"]) == 1)
        #expect(Scrape.value(after, "gatewarden_xdp_attached", ["interface": lab.gatewayInterface, "mode": "native"]) == 1)
        #expect(Scrape.value(after, "gatewarden_xdp_requested_mode", ["interface": lab.gatewayInterface, "mode": "native"]) == 1)
        #expect(Scrape.value(after, "gatewarden_nft_table_loaded", ["table": "gatewarden"]) == 1)
        #expect(Scrape.value(after, "gatewarden_build_info", [:]) == 1)

        // The client's SYNs were charged to its bucket (read straight from the pins), under the limit.
        let bucket = try XDPInstance(layout: layout).maps().sourceBucket(address: [192, 0, 2, 2])
        #expect(bucket != nil)
        #expect(try XDPInstance(layout: layout).maps().droppedPackets(address: [192, 0, 2, 2]) == nil)

        // Reloading swaps the program but keeps the maps: counters continue.
        let programBefore = try XDPInstance(layout: layout).link.info().programID
        try GatewardenBinary.run(["load", "--reload-program", "--interface", lab.gatewayInterface, "--netns", lab.gateway])
        let programAfter = try XDPInstance(layout: layout).link.info().programID
        #expect(programAfter != programBefore)
        let reloaded = try exporter.get()
        #expect(Scrape.value(reloaded, "gatewarden_xdp_packets_total", xdpLabels) == Scrape.value(after, "gatewarden_xdp_packets_total", xdpLabels))

        // Unload leaves nothing: no program on the link, no pins, no table.
        try GatewardenBinary.run(["unload", "--interface", lab.gatewayInterface, "--netns", lab.gateway])
        let linkAfter = try lab.inGateway(["ip", "-d", "link", "show", lab.gatewayInterface]).stdout
        #expect(!linkAfter.contains("xdp"))
        #expect(!FileManager.default.fileExists(atPath: layout.directory))
        #expect(!FileManager.default.fileExists(atPath: layout.namespaceDirectory))
        let tables = try lab.inGateway(["nft", "list", "tables"]).stdout
        #expect(!tables.contains("gatewarden"))

        // With nothing loaded the exporter still answers, and says so.
        let empty = try exporter.get()
        #expect(Scrape.value(empty, "gatewarden_nft_table_loaded", ["table": "gatewarden"]) == 0)
        #expect(Scrape.value(empty, "gatewarden_xdp_attached", ["interface": lab.gatewayInterface]) == nil)
    }

    @Test("the program keeps counting after the exporter is killed")
    func protectionOutlivesExporter() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        defer { _ = try? GatewardenBinary.run(["unload", "--interface", lab.gatewayInterface, "--netns", lab.gateway], check: false) }
        try GatewardenBinary.run(["load", "--interface", lab.gatewayInterface, "--netns", lab.gateway])

        let first = try ExporterProcess(arguments: ["--netns", lab.gateway])
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()

        try lab.sendUDP(port: 80, perSource: 10)
        let second = try ExporterProcess(arguments: ["--netns", lab.gateway])
        defer { second.stop() }
        let text = try second.get()
        #expect(Scrape.value(text, "gatewarden_xdp_packets_total",
                             ["interface": lab.gatewayInterface, "action": "pass", "reason": "within_limit"]) == 10)
    }
}

@Suite("Bad input changes nothing", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct BadInputTests {
    @Test("load on a missing interface fails with one line naming it and leaves nothing behind")
    func missingInterface() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let result = try GatewardenBinary.run(["load", "--interface", "nosuch0", "--netns", lab.gateway], check: false)
        #expect(result.status != 0)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.contains("interface 'nosuch0' does not exist") == true)
        #expect(!FileManager.default.fileExists(atPath: PinLayout(namespace: try NetworkNamespace(named: lab.gateway),
                                                                  interface: "nosuch0").namespaceDirectory))
        #expect(try !lab.inGateway(["nft", "list", "tables"]).stdout.contains("gatewarden"))
    }

    @Test("load in a missing namespace fails with one line naming it and leaves nothing behind")
    func missingNamespace() throws {
        let name = "gwt-missing-\(getpid())"
        let result = try GatewardenBinary.run(["load", "--interface", "gw0", "--netns", name], check: false)
        #expect(result.status != 0)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.contains("network namespace '\(name)' does not exist") == true)
        #expect(!FileManager.default.fileExists(atPath: "\(PinLayout.defaultRoot)/netns/\(name)"))
    }

    @Test("unload where nothing is loaded is an error naming the interface")
    func unloadNothing() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let result = try GatewardenBinary.run(["unload", "--interface", lab.gatewayInterface, "--netns", lab.gateway],
                                              check: false)
        #expect(result.status != 0)
        #expect(result.stderr.contains("not loaded on '\(lab.gatewayInterface)'"))
    }
}
