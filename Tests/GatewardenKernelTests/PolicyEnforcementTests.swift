import Foundation
import GatewardenKernel
import GatewardenTestSupport
import Testing

/// Each nftables rule of the policy, proven by traffic from a client namespace. XDP's rates are
/// off in these policies (`xdp.enabled: false`) so the packets reach nftables, and every limit but
/// the one under test is off.
@Suite("Policy enforcement by nftables, proven by traffic", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct PolicyEnforcementTests {
    /// Every limit off; `overrides` turns on what a test examines.
    static func policy(_ overrides: String = "", limits: [String: String] = [:]) -> String {
        let defaults = ["per_source": "off", "per_subnet": "off", "new_connections_per_source": "off",
                        "concurrent_connections_per_source": "off", "conntrack_cap": "off", "auth_per_subnet": "off"]
        let merged = defaults.merging(limits) { $1 }
        return "xdp: {enabled: false}\nescalation: off\nlimits:\n"
            + merged.sorted { $0.key < $1.key }.map { "  \($0.key): \($0.value)\n" }.joined() + overrides
    }

    /// A lab with Gatewarden loaded from `policy`; cleaned up by `teardown`.
    func lab(policy: String) throws -> (LabNetwork, [String], URL) {
        let lab = try LabNetwork()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-policy-\(getpid())-\(UUID().uuidString.prefix(8)).yaml")
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        do {
            try policy.write(to: file, atomically: true, encoding: .utf8)
            try GatewardenBinary.run(["load", "--policy", file.path] + arguments)
        } catch {
            teardown(lab, arguments, file)
            throw error
        }
        return (lab, arguments, file)
    }

    func teardown(_ lab: LabNetwork, _ arguments: [String], _ file: URL) {
        _ = try? GatewardenBinary.run(["unload"] + arguments, check: false)
        lab.remove()
        try? FileManager.default.removeItem(at: file)
    }

    @Test("the per-source meter drops above its rate, and its counter equals the packets dropped")
    func perSource() throws {
        let (lab, arguments, file) = try lab(policy: Self.policy(limits: ["per_source": "{rate: 100/second, burst: 200}"]))
        defer { teardown(lab, arguments, file) }
        let receiver = try lab.udpReceiver(port: 443)
        let start = Date()
        let sent = try lab.sendUDP(perSource: 1000)
        let elapsed = Date().timeIntervalSince(start)
        let received = Int(receiver.finish()) ?? -1
        print("per-source: sent \(sent), received \(received) in \(elapsed) s")
        #expect(received >= 200 && Double(received) <= 200 + 100 * elapsed + 2)
        #expect(try lab.ruleCounter("rate-source-v4") == sent - received)
    }

    @Test("50 addresses of one /24, each under the per-source rate, are limited together")
    func perSubnet() throws {
        let (lab, arguments, file) = try lab(policy: Self.policy(limits: [
            "per_source": "{rate: 100/second, burst: 200}", "per_subnet": "{rate: 100/second, burst: 100}"]))
        defer { teardown(lab, arguments, file) }
        let sources = (100..<150).map { "192.0.2.\($0)" }
        try lab.addClientAddresses(sources, prefix: 24)
        let receiver = try lab.udpReceiver(port: 443)
        let start = Date()
        let sent = try lab.sendUDP(from: sources, perSource: 20)
        let elapsed = Date().timeIntervalSince(start)
        let received = Int(receiver.finish()) ?? -1
        print("per-subnet: sent \(sent) from 50 sources, received \(received) in \(elapsed) s")
        #expect(received >= 100 && Double(received) <= 100 + 100 * elapsed + 2)
        #expect(try lab.ruleCounter("rate-subnet-v4") == sent - received)
        #expect(try lab.ruleCounter("rate-source-v4") == 0)
    }

    @Test("an IPv6 prefix meter limits many addresses in one /64 together")
    func ipv6Prefix() throws {
        let (lab, arguments, file) = try lab(policy: Self.policy("subnets: {ipv6_prefix: 64}\n", limits: [
            "per_subnet": "{rate: 100/second, burst: 100}"]))
        defer { teardown(lab, arguments, file) }
        try Command.run(["ip", "-n", lab.gateway, "addr", "add", "2001:db8:1::1/64", "dev", lab.gatewayInterface, "nodad"])
        let sources = (0x100..<0x132).map { "2001:db8:1::\(String($0, radix: 16))" }
        try lab.addClientAddresses(sources, prefix: 64)
        let receiver = try lab.udpReceiver(port: 443, ipv6: true)
        let start = Date()
        let sent = try lab.sendUDP(to: "2001:db8:1::1", from: sources, perSource: 20)
        let elapsed = Date().timeIntervalSince(start)
        let received = Int(receiver.finish()) ?? -1
        print("IPv6 /64: sent \(sent) from 50 addresses, received \(received) in \(elapsed) s")
        #expect(received >= 100 && Double(received) <= 100 + 100 * elapsed + 2)
        #expect(try lab.ruleCounter("rate-subnet-v6") == sent - received)
    }

    @Test("new connections over the per-source rate are reset")
    func synRate() throws {
        let (lab, arguments, file) = try lab(policy: Self.policy(limits: ["new_connections_per_source": "{rate: 10/second, burst: 20}"]))
        defer { teardown(lab, arguments, file) }
        let elapsed = try lab.burstSYNs(count: 100)
        let dropped = try lab.ruleCounter("new-connections-v4")
        print("new connections: 100 SYNs in \(elapsed) s, \(dropped) reset")
        #expect(try lab.ruleCounter("syn-to-protected-ports") == 100)
        // The burst (20) passes, then 10 a second for as long as the SYNs took to leave.
        #expect(dropped <= 80 && Double(dropped) >= 80 - 10 * elapsed - 1)
    }

    @Test("the 21st concurrent connection is reset while 20 stay open")
    func concurrentConnections() throws {
        let (lab, arguments, file) = try lab(policy: Self.policy(limits: ["concurrent_connections_per_source": "20"]))
        defer { teardown(lab, arguments, file) }
        let outcomes = try holdConnections(lab, count: 21)
        #expect(outcomes == Array(repeating: "open", count: 20) + ["reset"])
        // The reset connection's segments (its byte, a retransmission) may each be refused.
        #expect(try lab.ruleCounter("concurrent-connections-v4") >= 1)
    }

    @Test("over IPv6 too: the handshake completes through synproxy, 20 connections stay open, the 21st is reset")
    func concurrentConnectionsIPv6() throws {
        let (lab, arguments, file) = try lab(policy: Self.policy(limits: ["concurrent_connections_per_source": "20"]))
        defer { teardown(lab, arguments, file) }
        try Command.run(["ip", "-n", lab.gateway, "addr", "add", "2001:db8:1::1/64", "dev", lab.gatewayInterface, "nodad"])
        try lab.addClientAddresses(["2001:db8:1::2"], prefix: 64)
        let outcomes = try holdConnections(lab, count: 21, to: "2001:db8:1::1")
        #expect(outcomes == Array(repeating: "open", count: 20) + ["reset"])
        #expect(try lab.ruleCounter("synproxy-v6") >= 21, "every SYN was answered by synproxy")
        #expect(try lab.ruleCounter("concurrent-connections-v6") >= 1)
    }

    @Test("a gateway that also routes: a connection it forwards to a backend is neither synproxied nor counted, and works behind a host rule dropping invalid forwarded packets")
    func forwardedTrafficIsLeftAlone() throws {
        let (lab, arguments, file) = try lab(policy: Self.policy())
        defer { teardown(lab, arguments, file) }
        // A backend namespace behind the gateway (TEST-NET-3), and the host's own forward rule, as Docker's are.
        let backend = "gwt-be-\(getpid())-\(UUID().uuidString.prefix(6))"
        try Command.run(["ip", "netns", "add", backend])
        defer { _ = try? Command.run(["ip", "netns", "del", backend], check: false) }
        try Command.run(["ip", "link", "add", "be0", "netns", lab.gateway, "type", "veth", "peer", "name", "bk0", "netns", backend])
        try Command.run(["ip", "-n", lab.gateway, "addr", "add", "203.0.113.1/24", "dev", "be0"])
        try Command.run(["ip", "-n", backend, "addr", "add", "203.0.113.2/24", "dev", "bk0"])
        for (namespace, interface) in [(lab.gateway, "be0"), (backend, "bk0"), (backend, "lo")] {
            try Command.run(["ip", "-n", namespace, "link", "set", interface, "up"])
        }
        try Command.run(["ip", "-n", backend, "route", "add", "default", "via", "203.0.113.1"])
        try Command.run(["ip", "-n", lab.client, "route", "add", "203.0.113.0/24", "via", lab.gatewayAddress])
        try lab.inGateway(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        try lab.inGateway(["nft", "add table inet gwtest-host"])
        try lab.inGateway(["nft", "add chain inet gwtest-host forward { type filter hook forward priority 0 ; }"])
        try lab.inGateway(["nft", "add rule inet gwtest-host forward ct state invalid counter drop"])
        let server = try NamespacePython(namespace: backend, script: """
            import socket
            s = socket.socket()
            s.bind(("203.0.113.2", 443))
            s.listen(8)
            s.settimeout(10)
            print("ready")
            try:
                c, _ = s.accept()
                c.sendall(c.recv(16))
            except socket.timeout:
                pass
            """)
        defer { server.stop() }
        let reply = try Command.run(["ip", "netns", "exec", lab.client, "timeout", "10", "python3", "-c", """
            import socket
            s = socket.create_connection(("203.0.113.2", 443), timeout=3)
            s.sendall(b"through")
            print(s.recv(16).decode())
            """]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(reply == "through")
        #expect(try lab.ruleCounter("syn-to-protected-ports") == 0, "a forwarded SYN is not this host's to answer")
        #expect(try lab.ruleCounter("synproxy-v4") == 0)
    }

    @Test("observe mode: the 21st connection and an escalating subnet are counted, and nothing is reset or banned")
    func observeMode() throws {
        let (lab, arguments, file) = try lab(policy: Self.policy("""
            mode: observe
            escalation:
              per_subnet: {rate: 60/minute, burst: 10}

            """, limits: ["concurrent_connections_per_source": "20"]).replacingOccurrences(of: "escalation: off\n", with: ""))
        defer { teardown(lab, arguments, file) }
        let outcomes = try holdConnections(lab, count: 25)
        #expect(outcomes == Array(repeating: "open", count: 25), "observe mode reset a connection")
        #expect(try lab.ruleCounter("concurrent-connections-v4") >= 5)
        #expect(try lab.ruleCounter("escalate-subnet-v4") >= 1, "escalation judged the subnet")
        let bans = try lab.inGateway(["nft", "list", "set", "inet", "gatewarden", "blocked_subnets_v4"]).stdout
        #expect(!bans.contains("elements"), "observe mode banned: \(bans)")

        // Enforcing is the same command without the flag, in place: the next connection over the limit is reset.
        try Self.policy(limits: ["concurrent_connections_per_source": "20"]).write(to: file, atomically: true, encoding: .utf8)
        try GatewardenBinary.run(["load", "--policy", file.path] + arguments)
        #expect(try holdConnections(lab, count: 21).last == "reset")
    }

    /// Opens `count` connections from the client to a server in the gateway that holds what it
    /// accepts; returns "open" or "reset" (or "error:...") for each, in order, a second after each sent one byte (behind synproxy
    /// the handshake completes first, and the reset answers the connection's first segment).
    func holdConnections(_ lab: LabNetwork, count: Int, to address: String? = nil) throws -> [String] {
        let destination = address ?? lab.gatewayAddress
        let family = destination.contains(":") ? "socket.AF_INET6" : "socket.AF_INET"
        // Both ends hold every connection open: room for that many descriptors.
        let roomForAll = "import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (\(count + 512), \(count + 512)))"
        let server = try NamespacePython(namespace: lab.gateway, script: """
            \(roomForAll)
            import socket, time
            s = socket.socket(\(family))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("\(destination)", 443))
            s.listen(4096)
            s.settimeout(15)
            print("ready")
            held = []
            try:
                while True:
                    c, _ = s.accept()
                    held.append(c)
            except socket.timeout:
                pass
            """)
        defer { server.stop() }
        let result = try Command.run(["ip", "netns", "exec", lab.client, "timeout", String(30 + count / 50), "python3", "-c", """
            \(roomForAll)
            import socket, time
            held = []
            for i in range(\(count)):
                s = socket.socket(\(family))
                s.settimeout(3)
                try:
                    s.connect(("\(destination)", 443))
                    s.sendall(b"x")
                    held.append(s)
                except OSError as e:
                    held.append("error:" + str(e).replace(" ", "_"))
            time.sleep(1)
            outcomes = []
            for s in held:
                if isinstance(s, str):
                    outcomes.append(s)
                    continue
                try:
                    s.setblocking(False)
                    s.recv(1)
                    outcomes.append("open")
                except BlockingIOError:
                    outcomes.append("open")
                except ConnectionResetError:
                    outcomes.append("reset")
                except OSError as e:
                    outcomes.append("error:" + str(e).replace(" ", "_"))
            print(" ".join(outcomes))
            """]).stdout
        return result.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ").map(String.init)
    }

    @Test("escalation adds the /24 to the blocklist with a timeout, and the blocklist then drops it")
    func escalation() throws {
        let (lab, arguments, file) = try lab(policy: Self.policy("""
            escalation:
              per_subnet: {rate: 60/minute, burst: 10}
              block_for: 30m

            """).replacingOccurrences(of: "escalation: off\n", with: ""))
        defer { teardown(lab, arguments, file) }
        try lab.burstSYNs(count: 30)
        let listing = try lab.inGateway(["nft", "list", "set", "inet", "gatewarden", "blocked_subnets_v4"]).stdout
        print("escalation: \(listing.split(separator: "\n").first { $0.contains("elements") } ?? "no elements")")
        #expect(listing.contains("elements = { 192.0.2.0 expires 29m") || listing.contains("elements = { 192.0.2.0 timeout 30m expires 29m"))
        #expect(try lab.ruleCounter("escalate-subnet-v4") >= 1)
        // Now banned on every port, not only the protected ones.
        let before = try lab.ruleCounter("escalated-v4")
        try lab.sendUDP(port: 53, perSource: 10)
        // At least: the burst's own connections, now banned, still retransmit their FINs.
        #expect(try lab.ruleCounter("escalated-v4") >= before + 10)
    }

    @Test("an allowlisted address passes above every limit")
    func allowlist() throws {
        let (lab, arguments, file) = try lab(policy: Self.policy("allowlist: [192.0.2.2/32]\n", limits: [
            "per_source": "{rate: 10/second, burst: 10}", "per_subnet": "{rate: 10/second, burst: 10}",
            "new_connections_per_source": "{rate: 1/second, burst: 1}"]))
        defer { teardown(lab, arguments, file) }
        let receiver = try lab.udpReceiver(port: 443)
        let sent = try lab.sendUDP(perSource: 300)
        #expect(Int(receiver.finish()) == sent)
        #expect(try lab.ruleCounter("allowlist-v4") == sent)
        #expect(try lab.ruleCounter("rate-source-v4") == 0)
        #expect(try lab.ruleCounter("rate-subnet-v4") == 0)
    }

    @Test("re-applying a changed policy under a flood keeps existing bans")
    func reapplyKeepsBans() throws {
        let (lab, arguments, file) = try lab(policy: Self.policy(limits: ["per_source": "{rate: 100/second, burst: 200}"]))
        defer { teardown(lab, arguments, file) }
        try lab.inGateway(["nft", "add element inet gatewarden block_v4 { 198.51.100.0/24 timeout 1h }"])
        try lab.inGateway(["nft", "add element inet gatewarden blocked_subnets_v4 { 203.0.113.0 timeout 30m }"])
        let flood = try lab.startUDPFlood(port: 443, seconds: 2)
        usleep(500_000)
        try Self.policy(limits: ["per_source": "{rate: 50/second, burst: 100}"]).write(to: file, atomically: true, encoding: .utf8)
        try GatewardenBinary.run(["load", "--policy", file.path] + arguments)
        _ = flood.finish()
        // Past the new burst whenever the flood ended (a busy machine can take longer to load than it lasts).
        try lab.sendUDP(perSource: 300)
        #expect(try lab.inGateway(["nft", "list", "set", "inet", "gatewarden", "block_v4"]).stdout.contains("198.51.100.0/24"))
        #expect(try lab.inGateway(["nft", "list", "set", "inet", "gatewarden", "blocked_subnets_v4"]).stdout.contains("203.0.113.0"))
        #expect(try lab.inGateway(["nft", "list", "chain", "inet", "gatewarden", "input"]).stdout.contains("limit rate over 50/second burst 100 packets"))
        #expect(try lab.ruleCounter("rate-source-v4") > 0, "the new limit is enforcing")
    }
}

/// A bad policy never replaces a good loaded one.
@Suite("Malformed policies change nothing", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct PolicyRejectionTests {
    @Test("each malformed policy is refused naming its line and key; the loaded ruleset stays byte for byte")
    func corpus() throws {
        let lab = try LabNetwork()
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        defer {
            _ = try? GatewardenBinary.run(["unload"] + arguments, check: false)
            lab.remove()
        }
        try GatewardenBinary.run(["load"] + arguments)
        let before = try lab.inGateway(["nft", "list", "table", "inet", "gatewarden"]).stdout
        let corpus = MalformedPolicy.corpus()
        #expect(corpus.count >= 20)
        for bad in corpus {
            let result = try GatewardenBinary.run(["load", "--policy", bad.file] + arguments, check: false)
            #expect(result.status != 0, "\(bad.name) was accepted")
            #expect(result.stderr.contains("\(bad.file):\(bad.line):\(bad.column): \(bad.key):"), "\(bad.name): \(result.stderr)")
            let check = try GatewardenBinary.run(["check", "--policy", bad.file], check: false)
            #expect(check.status != 0)
            #expect(check.stdout.contains("\(bad.file):\(bad.line):\(bad.column): \(bad.key):"))
            let after = try lab.inGateway(["nft", "list", "table", "inet", "gatewarden"]).stdout
            #expect(after == before, "\(bad.name) changed the ruleset")
        }
    }
}
