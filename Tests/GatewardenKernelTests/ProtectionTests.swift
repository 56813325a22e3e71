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
        var legitimate: HTTPSClient.Outcome
        var conntrackPeak: Int
        var description: String {
            "gateway received \(flood.received) SYNs in \(String(format: "%.2f", flood.seconds)) s "
                + "(\(Int(flood.absorbedPerSecond)) SYN/s); conntrack peak \(conntrackPeak); legitimate client: \(legitimate)"
        }
    }

    private func spoofedFlood(_ lab: LabNetwork, users: UsersLink, count: Int) throws -> FloodRun {
        // The users' own link, the attacker's own link: they meet at the gateway, as on the Internet.
        // Both on the flood's CPU, where veth runs the gateway's receive work for both: the users' packets
        // compete with the flood in the gateway. The user's own process runs ahead of the generator's
        // (nice -10): they stand for two different machines, and an attacker's machine takes no CPU
        // from a user's.
        let client = try HTTPSClient(namespace: users.namespace, server: users.gatewayAddress, keepAlive: false,
                                     requestsPerSecond: 10, seconds: 6, cpu: LabNetwork.floodCPU, nice: -10)
        defer { client.stop() }
        let conntrack = try ConntrackPeak(namespace: lab.gateway)
        defer { _ = conntrack.stop() }
        usleep(500_000)
        let flood = try lab.spoofedSYNFlood(count: count)
        let legitimate = try client.finish()
        return FloodRun(flood: flood, legitimate: legitimate, conntrackPeak: conntrack.stop())
    }

    @Test("a spoofed SYN flood: the legitimate HTTPS client succeeds, conntrack stays empty, the gateway absorbs as much as without Gatewarden")
    func spoofedSYNFlood() throws {
        try withGateway { lab, _, arguments in
            try lab.routeSpoofedRange()
            let users = try UsersLink(lab: lab)
            defer { users.remove() }

            let conntrackMax = try #require(try Conntrack.maximum(in: NetworkNamespace(named: lab.gateway)))
            // Seven rounds, without and with Gatewarden interleaved: the machine is noisy (rounds with
            // Gatewarden ranged from 130k to 185k SYN/s in one run), medians less so.
            var without: [FloodRun] = [], with: [FloodRun] = []
            for round in 1...7 {
                _ = try? GatewardenBinary.run(["unload"] + arguments, check: false)
                without.append(try spoofedFlood(lab, users: users, count: 300_000))
                print("spoofed SYN flood, round \(round), without Gatewarden: \(without.last!)")

                try GatewardenBinary.run(["load"] + arguments)
                with.append(try spoofedFlood(lab, users: users, count: 300_000))
                print("spoofed SYN flood, round \(round), with Gatewarden:    \(with.last!)")
                // Where a legitimate packet could have been refused, should one have been.
                let refusals = try ["new-connections-v4", "concurrent-connections-v4", "conntrack-cap", "escalate-subnet-v4",
                                    "blocklist-v4", "escalated-v4", "auth-subnet-v4"].map { "\($0) \(try lab.ruleCounter($0))" }
                let drops = try lab.gatewayInstance().maps().readStatistics().filter { $0.action == "drop" && $0.packets > 0 }
                print("  refusals: \(refusals.joined(separator: ", ")); XDP drops: \(drops.map { "\($0.reason) \($0.packets)" })")

            }
            func median(_ runs: [FloodRun]) -> Double { runs.map(\.flood.absorbedPerSecond).sorted()[runs.count / 2] }
            let ratio = median(with) / median(without)
            let legitimate = with.map(\.legitimate)
            let ok = legitimate.reduce(0) { $0 + $1.ok }, failed = legitimate.reduce(0) { $0 + $1.failed }
            let conntrackPeak = with.map(\.conntrackPeak).max() ?? 0
            print("spoofed SYN flood: median absorbed \(Int(median(without))) SYN/s without, \(Int(median(with))) with "
                + "(ratio \(String(format: "%.2f", ratio))); legitimate client with Gatewarden \(ok) ok, \(failed) failed; "
                + "conntrack peak \(conntrackPeak) of \(conntrackMax)")

            #expect(Double(ok) >= 0.99 * Double(ok + failed), "\(legitimate)")
            #expect(conntrackPeak < conntrackMax / 100, "the flood reached conntrack")
            // The issue's bar: at least 80% of what the gateway absorbs without Gatewarden (the same run, medians
            // of interleaved rounds). On veth load's default is generic mode, where XDP answers the flood's SYNs
            // with cookies itself (1.4-1.5x the kernel's own SYN cookies here); native mode on veth, where the
            // SYNs go on to nftables' synproxy, measured 0.70-0.74, and that is why veth defaults to generic.
            #expect(ratio >= 0.8, "the flood costs the gateway more with Gatewarden than without")
            let answered = try lab.gatewayInstance().maps().readStatistics()
                .filter { $0.action == "syncookie" }.reduce(0) { $0 + $1.packets }
            #expect(answered >= UInt64(with.last!.flood.received * 9 / 10), "XDP answered the flood with SYN cookies")
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

    @Test("a new TLS connection per request: the server takes synproxy's ACK, so no handshake waits for a retransmission")
    func handshakesCompleteAtOnce() throws {
        try withGateway { lab, _, arguments in
            try GatewardenBinary.run(["load"] + arguments)
            // The server's socket is established by the ACK synproxy sends it, before the client says
            // anything: a connection held idle is not left half-open (SYN-RECV) until the server resends
            // its SYN-ACK a second later.
            let states = try Command.run(["ip", "netns", "exec", lab.client, "timeout", "10", "python3", "-c", """
                import socket, subprocess, time
                s = socket.create_connection(("\(lab.gatewayAddress)", 443), timeout=3)
                time.sleep(0.3)
                def count(state):
                    listing = subprocess.run(["ip", "netns", "exec", "\(lab.gateway)", "ss", "-Htn", "state", state,
                                              "( sport = :443 )"], capture_output=True, text=True, check=True).stdout
                    return len(listing.splitlines())
                print(count("syn-recv"), count("established"))
                """]).stdout.split(separator: " ").map { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            #expect(states == [0, 1], "server sockets half-open, established: \(states)")

            let rejectedBefore = try Self.tcpExtension("TSEcrRejected", in: lab)
            let client = try HTTPSClient(lab: lab, keepAlive: false, requestsPerSecond: 10, seconds: 30)
            let outcome = try client.finish()
            let rejected = try Self.tcpExtension("TSEcrRejected", in: lab).map { $0 - (rejectedBefore ?? 0) }
            print("new-connection client: \(outcome); ACKs the server refused for their timestamp echo: "
                + (rejected.map(String.init) ?? "not counted by this kernel"))
            #expect(outcome.failed == 0 && outcome.ok == 300, "\(outcome)")
            #expect(outcome.slow == 0, "handshakes that waited for a retransmission: \(outcome)")
            // Linux 6.15 and later count an ACK whose timestamp echo is none of the SYN-ACKs' (before,
            // synproxy's ACK was taken whatever it echoed): synproxy's, echoing twice-shifted, was each time.
            if let rejected { #expect(rejected == 0, "the server refused ACKs for their timestamp echo") }
        }
    }

    @Test("a client reconnecting from the same port while the last connection's conntrack entry is in TIME_WAIT connects",
          arguments: [true, false])
    func reconnectionFromTheSamePort(xdp: Bool) throws {
        try withGateway { lab, _, arguments in
            // With XDP on the veth this never failed; with nftables alone every such reconnection did.
            let policy = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-reconnect-\(lab.gateway).yaml")
            defer { try? FileManager.default.removeItem(at: policy) }
            try "xdp: {enabled: \(xdp)}\n".write(to: policy, atomically: true, encoding: .utf8)
            try GatewardenBinary.run(["load", "--policy", policy.path] + arguments)
            // nginx closes first under `Connection: close`: the entry lingers in TIME_WAIT (120 s), as
            // it does when a NAT or a busy client hands the same source port to a new connection.
            let attempts = try Command.run(["ip", "netns", "exec", lab.client, "timeout", "60", "python3", "-c", """
                import socket, ssl, time
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                for port in (41000, 41000, 41002, 41002, 41004, 41004):
                    s = socket.socket()
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(("\(lab.clientAddress)", port))
                    s.settimeout(4)
                    try:
                        s.connect(("\(lab.gatewayAddress)", 443))
                        with context.wrap_socket(s) as tls:
                            tls.sendall(b"GET / HTTP/1.1\\r\\nHost: gateway\\r\\nConnection: close\\r\\n\\r\\n")
                            reply = b""
                            while chunk := tls.recv(4096):
                                reply += chunk
                        print("ok" if reply.startswith(b"HTTP/1.1 200") else "refused")
                    except OSError as e:
                        print("failed")
                    s.close()
                    time.sleep(0.3)
                """]).stdout.split(separator: "\n").map(String.init)
            print("XDP \(xdp ? "on" : "off"): six connections, each source port twice: \(attempts.joined(separator: " "))")
            #expect(attempts == Array(repeating: "ok", count: 6))
        }
    }

    /// A TcpExt counter of the gateway namespace's TCP stack (nil when this kernel has none by that name).
    private static func tcpExtension(_ name: String, in lab: LabNetwork) throws -> Int? {
        let lines = try lab.inGateway(["cat", "/proc/net/netstat"]).stdout.split(separator: "\n").map { $0.split(separator: " ") }
        // Pairs of lines: the names, then the values, each starting with "TcpExt:".
        guard let names = lines.first(where: { $0.first == "TcpExt:" }), let index = names.firstIndex(of: Substring(name)),
              let values = lines.last(where: { $0.first == "TcpExt:" }), values.count == names.count else { return nil }
        return Int(values[index])
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
