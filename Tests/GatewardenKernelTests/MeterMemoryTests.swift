import Foundation
import GatewardenKernel
import GatewardenTestSupport
import Testing

/// nftables meters remember what they must: a re-applied policy keeps every source's open
/// connections and spent budget, a slow meter keeps an idle key until its bucket has refilled, and a
/// subnet that keeps trying while banned stays banned instead of coming back with a fresh burst.
extension PolicyEnforcementTests {
    @Test("re-applying the policy keeps each source's open-connection count: with 20 open, the 21st is still reset")
    func connectionCountsSurviveReapply() throws {
        let limits = ["concurrent_connections_per_source": "20"]
        let (lab, arguments, file) = try lab(policy: Self.policy(limits: limits))
        defer { teardown(lab, arguments, file) }
        let server = try holdingServer(lab, seconds: 30)
        defer { server.stop() }
        let go = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-go-\(getpid())-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: go) }
        let client = try NamespacePython(namespace: lab.client, script: """
            import os, socket, time
            held = []
            for _ in range(20):
                s = socket.socket()
                s.settimeout(3)
                s.connect(("\(lab.gatewayAddress)", 443))
                s.sendall(b"x")
                held.append(s)
            print("ready")
            deadline = time.monotonic() + 20
            while not os.path.exists("\(go.path)") and time.monotonic() < deadline:
                time.sleep(0.05)
            s = socket.socket()
            s.settimeout(3)
            try:
                s.connect(("\(lab.gatewayAddress)", 443))
                s.sendall(b"x")
                time.sleep(1)
                s.setblocking(False)
                s.recv(1)
                print("open")
            except BlockingIOError:
                print("open")
            except ConnectionResetError:
                print("reset")
            except OSError as e:
                print("error:" + str(e))
            """)
        // The same policy again, and a change that leaves the connection limit as it was.
        try GatewardenBinary.run(["load", "--policy", file.path] + arguments)
        try Self.policy(limits: limits.merging(["new_connections_per_source": "{rate: 50/second, burst: 100}"]) { $1 })
            .write(to: file, atomically: true, encoding: .utf8)
        try GatewardenBinary.run(["load", "--policy", file.path] + arguments)
        FileManager.default.createFile(atPath: go.path, contents: nil)
        #expect(client.finish() == "reset", "the re-apply forgot the 20 open connections")
    }

    @Test("a slow meter keeps an idle source until its bucket has refilled: 3/hour burst 3 remembers for an hour")
    func slowMeterRemembers() throws {
        let (lab, arguments, file) = try lab(policy: Self.policy(limits: ["new_connections_per_source": "{rate: 3/hour, burst: 3}"]))
        defer { teardown(lab, arguments, file) }
        try lab.sendSYNs(count: 4, port: 443)
        #expect(try lab.ruleCounter("new-connections-v4") == 1, "the burst of 3 passed, the 4th was reset")
        let listing = try lab.inGateway(["nft", "list", "set", "inet", "gatewarden", "new_connections_v4"]).stdout
        // With a 60 s timeout the key (and the spent burst) would be gone in a minute.
        let expiry = listing.range(of: #"192\.0\.2\.2 [^}]*expires \d+m"#, options: .regularExpression).map { listing[$0] }
        let minutes = expiry.flatMap { Int($0.split(separator: " ").last!.dropLast()) } ?? 0
        print("slow meter: \(expiry ?? "no element")")
        #expect(minutes >= 59, "the idle key expires before its bucket refills: \(listing)")
    }

    @Test("a banned subnet that keeps trying faster than the escalation rate stays banned, and gets no fresh burst")
    func escalationBanRenewed() throws {
        let (lab, arguments, file) = try lab(policy: Self.policy("""
            escalation:
              per_subnet: {rate: 60/minute, burst: 10}
              block_for: 3s

            """).replacingOccurrences(of: "escalation: off\n", with: ""))
        defer { teardown(lab, arguments, file) }
        try lab.burstSYNs(count: 30)
        #expect(try lab.inGateway(["nft", "list", "set", "inet", "gatewarden", "blocked_subnets_v4"]).stdout.contains("192.0.2.0"))
        // Now a server, and the subnet trying 10 connections a second for twice the ban's length.
        let server = try holdingServer(lab, seconds: 8)
        try Command.run(["ip", "netns", "exec", lab.client, "timeout", "20", "python3", "-c", """
            import socket, time
            held = []
            for _ in range(60):
                s = socket.socket()
                s.setblocking(False)
                try:
                    s.connect(("\(lab.gatewayAddress)", 443))
                except BlockingIOError:
                    pass
                held.append(s)
                time.sleep(0.1)
            for s in held:
                s.close()
            """])
        let accepted = Int(server.finish()) ?? -1
        #expect(accepted == 0, "the ban lapsed while the subnet kept trying: \(accepted) connections accepted")
        #expect(try lab.ruleCounter("escalation-renewed-v4") > 0)
        #expect(try lab.inGateway(["nft", "list", "set", "inet", "gatewarden", "blocked_subnets_v4"]).stdout.contains("192.0.2.0"))
        // Once it stops, the ban runs out on time.
        sleep(4)
        #expect(!(try lab.inGateway(["nft", "list", "set", "inet", "gatewarden", "blocked_subnets_v4"]).stdout.contains("192.0.2.0")))
    }

    /// A server in the gateway that accepts and holds connections on 443 for `seconds` (or until
    /// stopped); `finish()` returns how many it accepted.
    func holdingServer(_ lab: LabNetwork, seconds: Double) throws -> NamespacePython {
        try NamespacePython(namespace: lab.gateway, script: """
            import socket, time
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("\(lab.gatewayAddress)", 443))
            s.listen(128)
            print("ready")
            deadline = time.monotonic() + \(seconds)
            held = []
            while time.monotonic() < deadline:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    c, _ = s.accept()
                    held.append(c)
                except socket.timeout:
                    pass
            print(len(held))
            """)
    }
}
