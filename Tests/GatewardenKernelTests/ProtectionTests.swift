import Foundation
import GatewardenKernel
import Testing

/// Protection proven against what it protects: a real nginx with TLS in the gateway namespace, real
/// clients and the seeds' attacks from the client namespace, with and without Gatewarden in the
/// same test. A protection that makes any scenario worse than none is a defect.
///
/// `scripts/test.sh` runs this suite on its own after the others: its with/without comparisons
/// measure throughput, which suites flooding in parallel would disturb.
@Suite("Protection of a real nginx, with and without Gatewarden", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct ProtectionTests {
    /// A lab with nginx running in the gateway namespace; `body` runs, then everything is removed.
    private func withGateway(_ body: (LabNetwork, Nginx, [String]) throws -> Void) throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        defer { _ = try? GatewardenBinary.run(["unload"] + arguments, check: false) }
        let nginx = try Nginx(namespace: lab.gateway)
        defer { nginx.stop() }
        try body(lab, nginx, arguments)
    }

    /// What one run of the spoofed SYN flood did to the gateway and to a legitimate client.
    private struct FloodRun: CustomStringConvertible {
        var flood: LabNetwork.FloodResult
        var received: Int
        var legitimate: HTTPSClient.Outcome
        var conntrackPeak: Int
        /// SYNs the gateway took off the wire per second (its softirq shares the generator's CPU).
        var absorbedPerSecond: Double { Double(received) / flood.seconds }
        var description: String {
            "\(flood.sent) SYNs in \(String(format: "%.2f", flood.seconds)) s, gateway absorbed "
                + "\(Int(absorbedPerSecond)) SYN/s; conntrack peak \(conntrackPeak); legitimate client: \(legitimate)"
        }
    }

    private func spoofedFlood(_ lab: LabNetwork, count: Int) throws -> FloodRun {
        let client = try HTTPSClient(lab: lab, keepAlive: false, requestsPerSecond: 10, seconds: 6)
        let conntrack = try ConntrackPeak(namespace: lab.gateway)
        usleep(500_000)
        let before = try lab.gatewayReceivedPackets()
        let flood = try lab.spoofedSYNFlood(count: count)
        let received = try lab.gatewayReceivedPackets() - before
        let legitimate = try client.finish()
        return FloodRun(flood: flood, received: received, legitimate: legitimate, conntrackPeak: conntrack.stop())
    }

    @Test("a spoofed SYN flood: the legitimate HTTPS client succeeds, conntrack stays empty, the gateway absorbs as much as without Gatewarden")
    func spoofedSYNFlood() throws {
        try withGateway { lab, _, arguments in
            try lab.routeSpoofedRange()
            let count = 300_000
            let without = try spoofedFlood(lab, count: count)
            print("spoofed SYN flood without Gatewarden: \(without)")

            try GatewardenBinary.run(["load"] + arguments)
            let with = try spoofedFlood(lab, count: count)
            print("spoofed SYN flood with Gatewarden:    \(with)")
            let conntrackMax = try #require(try Conntrack.maximum(in: NetworkNamespace(named: lab.gateway)))
            print("ratio absorbed with/without: \(String(format: "%.2f", with.absorbedPerSecond / without.absorbedPerSecond)); "
                + "conntrack peak \(with.conntrackPeak) of \(conntrackMax)")

            #expect(with.legitimate.successPercent >= 99, "\(with.legitimate)")
            #expect(with.conntrackPeak < conntrackMax / 100, "the flood reached conntrack")
            #expect(with.absorbedPerSecond >= 0.8 * without.absorbedPerSecond)
            #expect(try lab.ruleCounter("synproxy-v4") >= with.received * 9 / 10, "synproxy answered the flood")
        }
    }

    @Test("a keep-alive client at 100 requests/s and a new-connection client at 10/s, at once: no failure, no drop in either layer")
    func legitimateClients() throws {
        try withGateway { lab, _, arguments in
            try GatewardenBinary.run(["load"] + arguments)
            let keepAlive = try HTTPSClient(lab: lab, keepAlive: true, requestsPerSecond: 100, seconds: 30)
            let newConnections = try HTTPSClient(lab: lab, keepAlive: false, requestsPerSecond: 10, seconds: 30)
            let keepAliveOutcome = try keepAlive.finish()
            let newConnectionOutcome = try newConnections.finish()
            print("keep-alive client: \(keepAliveOutcome); new-connection client: \(newConnectionOutcome)")
            #expect(keepAliveOutcome.failed == 0 && keepAliveOutcome.ok == 3000)
            #expect(newConnectionOutcome.failed == 0 && newConnectionOutcome.ok == 300)

            let maps = try lab.gatewayInstance().maps()
            let dropped = try maps.readStatistics().filter { $0.action == "drop" }.reduce(0) { $0 + $1.packets }
            #expect(dropped == 0, "XDP dropped packets of legitimate clients")
            for rule in ["escalate-subnet-v4", "new-connections-v4", "concurrent-connections-v4", "conntrack-cap",
                         "blocklist-v4", "escalated-v4"] {
                #expect(try lab.ruleCounter(rule) == 0, "\(rule) refused legitimate traffic")
            }
        }
    }

    @Test("slowloris: one source holds 20 connections open; the 21st is reset before nginx sees it")
    func slowloris() throws {
        try withGateway { lab, _, arguments in
            try GatewardenBinary.run(["load"] + arguments)
            // Each connection sends the start of a request and never finishes it, as slowloris does.
            let result = try Command.run(["ip", "netns", "exec", lab.client, "timeout", "30", "python3", "-c", """
                import socket, time
                held = []
                for i in range(21):
                    s = socket.socket()
                    s.settimeout(3)
                    s.connect(("\(lab.gatewayAddress)", 80))
                    s.sendall(b"GET / HTTP/1.1\\r\\nHost: gateway\\r\\n")
                    held.append(s)
                    time.sleep(0.05)
                time.sleep(1)
                states = []
                for s in held:
                    try:
                        s.sendall(b"X-a: b\\r\\n")
                        s.setblocking(False)
                        states.append("eof" if s.recv(1) == b"" else "data")
                    except BlockingIOError:
                        states.append("held")
                    except OSError as e:
                        states.append("reset")
                print(" ".join(states))
                """]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            print("slowloris, 21 connections from one source: \(result)")
            #expect(result.split(separator: " ").map(String.init) == Array(repeating: "held", count: 20) + ["reset"])
            #expect(try lab.ruleCounter("concurrent-connections-v4") >= 1)
        }
    }
}
