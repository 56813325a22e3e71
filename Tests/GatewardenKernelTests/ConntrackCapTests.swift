import Foundation
import GatewardenKernel
import GatewardenTestSupport
import Testing

/// The conntrack cap, held by `gatewarden serve` at a constant per-packet cost.
extension PolicyEnforcementTests {
    @Test("over the conntrack cap (whatever fills the table) a new connection is reset; with the guard killed, the cap lapses within seconds")
    func conntrackCap() throws {
        let (lab, arguments, file) = try lab(policy: Self.policy(limits: ["conntrack_cap": "1%"]))
        defer { teardown(lab, arguments, file) }
        let maximum = try #require(Int(lab.inGateway(["cat", "/proc/sys/net/netfilter/nf_conntrack_max"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        let cap = maximum / 100
        #expect(try holdConnections(lab, count: 1) == ["open"], "under the cap")

        let exporter = try ExporterProcess(arguments: ["--netns", lab.gateway])
        defer { exporter.stop() }
        // Fill conntrack past the cap with UDP flows (one source port each) to an unprotected port:
        // the cap is about the table, not about what filled it.
        let flows = min(cap + 500, 100_000)
        try Command.run(["ip", "netns", "exec", lab.client, "timeout", "30", "python3", "-c", """
            import socket
            for _ in range(\(flows)):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.sendto(b"x", ("\(lab.gatewayAddress)", 9))
                s.close()
            """])
        let engaged = try waitFor(seconds: 3) {
            try lab.inGateway(["nft", "list", "set", "inet", "gatewarden", "conntrack_full"]).stdout.contains("elements = { tcp")
        }
        #expect(engaged, "the guard never switched the cap on")
        #expect(try holdConnections(lab, count: 1) == ["reset"], "over the cap")
        #expect(try lab.ruleCounter("conntrack-cap") >= 1)

        // The guard dies: the cap lapses (fails open), while the table is still over it.
        kill(exporter.process.processIdentifier, SIGKILL)
        exporter.process.waitUntilExit()
        sleep(3)
        let count = Int(try lab.inGateway(["cat", "/proc/sys/net/netfilter/nf_conntrack_count"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(count >= cap, "the flows expired too early for this check")
        #expect(try holdConnections(lab, count: 1) == ["open"], "the cap stayed on without its guard")
    }

    /// Polls `condition` every 100 ms for up to `seconds`.
    func waitFor(seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if try condition() { return true }
            usleep(100_000)
        } while Date() < deadline
        return false
    }
}
