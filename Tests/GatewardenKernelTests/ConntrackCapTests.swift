import Foundation
import GatewardenKernel
import GatewardenTestSupport
import Testing

/// The conntrack cap: completed connections to the protected ports, counted in shares whose cost
/// does not grow with the table, and nothing else.
extension PolicyEnforcementTests {
    @Test("the conntrack cap: a table filled by spoofable UDP refuses no real client; completed connections are held to the cap")
    func conntrackCap() throws {
        let (lab, arguments, file) = try lab(policy: Self.policy(limits: ["conntrack_cap": "1%"]))
        defer { teardown(lab, arguments, file) }
        let maximum = try #require(Int(lab.inGateway(["cat", "/proc/sys/net/netfilter/nf_conntrack_max"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        let cap = maximum / 100

        // Past the cap in UDP flows (one source port each) to an unprotected port: not the cap's business.
        let flows = min(cap + 500, 100_000)
        try Command.run(["ip", "netns", "exec", lab.client, "timeout", "30", "python3", "-c", """
            import socket
            for _ in range(\(flows)):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.sendto(b"x", ("\(lab.gatewayAddress)", 9))
                s.close()
            """])
        let tracked = Int(try lab.inGateway(["cat", "/proc/sys/net/netfilter/nf_conntrack_count"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(tracked > cap, "the UDP flows did not fill conntrack past the cap")

        // Completed connections, held open, well past the cap: the shares hold them to it.
        let attempts = cap + cap / 4
        let outcomes = try holdConnections(lab, count: attempts)
        let open = outcomes.filter { $0 == "open" }.count
        print("conntrack cap \(cap): \(tracked) tracked after the UDP flows; of \(attempts) connections \(open) open, "
            + "the last 100: \(outcomes.suffix(100).filter { $0 == "reset" }.count) reset")
        #expect(outcomes.prefix(cap * 3 / 4).allSatisfy { $0 == "open" }, "refused below three quarters of the cap")
        #expect(open <= cap + 10 && open >= cap * 9 / 10)
        #expect(outcomes.suffix(100).allSatisfy { $0 == "reset" }, "let through past the cap")
        #expect(try lab.ruleCounter("conntrack-cap") >= attempts - open)
    }
}
