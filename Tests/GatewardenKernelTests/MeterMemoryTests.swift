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

    @Test("a subnet back over the escalation rate right after its ban is banned again at once, without a fresh burst; spoofed SYNs extend no ban")
    func escalationProbation() throws {
        let (lab, arguments, file) = try lab(policy: Self.policy("""
            escalation:
              per_subnet: {rate: 60/minute, burst: 10}
              block_for: 3s

            """).replacingOccurrences(of: "escalation: off\n", with: ""))
        defer { teardown(lab, arguments, file) }
        func banned() throws -> Bool {
            try lab.inGateway(["nft", "list", "set", "inet", "gatewarden", "blocked_subnets_v4"]).stdout.contains("192.0.2.0")
        }
        try lab.burstSYNs(count: 30)
        #expect(try banned())
        sleep(3)
        #expect(try !banned(), "the ban outlasted block_for")
        // Back at 10 connections a second: on probation, the first is let through, then the subnet is banned again.
        let server = try holdingServer(lab, seconds: 4)
        try Command.run(["ip", "netns", "exec", lab.client, "timeout", "20", "python3", "-c", """
            import socket, time
            held = []
            for _ in range(20):
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
        print("escalation probation: \(accepted) of 20 connections accepted after the ban ended")
        #expect(accepted >= 1 && accepted <= 2, "a rested meter would have let the burst of 10 through")
        #expect(try lab.ruleCounter("escalate-on-probation-v4") >= 1, "banned again on probation")

        // SYNs in a banned subnet's name that never complete a handshake, 20 a second for longer
        // than the ban: it still ends on time.
        try lab.routeSpoofedRange()
        try lab.addClientAddresses(["198.18.0.2"], prefix: 24)
        try lab.inGateway(["nft", "add element inet gatewarden blocked_subnets_v4 { 198.18.0.0 timeout 3s }"])
        try Command.run(["ip", "netns", "exec", lab.client, "timeout", "20", "python3", "-c", """
            import socket, struct, time
            source, destination = socket.inet_aton("198.18.0.2"), socket.inet_aton("\(lab.gatewayAddress)")
            def checksum(data):
                total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
                total = (total >> 16) + (total & 0xffff)
                return ~(total + (total >> 16)) & 0xffff
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
            s.bind(("198.18.0.2", 0))
            for i in range(100):
                tcp = struct.pack("!HHIIBBHHH", 40000 + i, 443, i, 0, 5 << 4, 0x02, 64240, 0, 0)
                pseudo = source + destination + struct.pack("!BBH", 0, 6, len(tcp))
                tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
                s.sendto(tcp, ("\(lab.gatewayAddress)", 0))
                time.sleep(0.05)
            """])
        usleep(500_000)
        #expect(try !lab.inGateway(["nft", "list", "set", "inet", "gatewarden", "blocked_subnets_v4"]).stdout.contains("198.18.0.0"),
                "spoofed SYNs extended a ban")
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
