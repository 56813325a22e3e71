import Foundation
import GatewardenKernel

/// The seed's attacks and a legitimate client, run from the lab's client namespace against the
/// gateway. Every generator is bounded in count and in time.
extension LabNetwork {
    /// Spoofed sources live in 198.18.0.0/15 (RFC 2544's benchmark range): 512 /24s, so a flood at
    /// the generator's full speed stays under every per-/24 limit, as a flood from the internet would.
    static let spoofedRange = "198.18.0.0/15"

    /// Routes replies to spoofed sources (SYN-ACKs, cookies) back into the client namespace, where
    /// nothing answers them: they stay inside the lab.
    func routeSpoofedRange() throws {
        try Command.run(["ip", "-n", gateway, "route", "add", Self.spoofedRange, "via", clientAddress])
    }

    /// The gateway interface's MAC address (trafgen writes whole frames).
    func gatewayMAC() throws -> String {
        let output = try Command.run(["ip", "-n", gateway, "-j", "link", "show", gatewayInterface]).stdout
        let links = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]]
        guard let mac = links?.first?["address"] as? String else { throw Command.Failure(command: ["ip", "link"], result: .init(status: 1, stdout: output, stderr: "no address")) }
        return mac
    }

    /// Packets received on the gateway interface so far.
    func gatewayReceivedPackets() throws -> Int {
        let output = try Command.run(["ip", "-n", gateway, "-j", "-s", "link", "show", gatewayInterface]).stdout
        let links = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]]
        let stats = links?.first?["stats64"] as? [String: Any]
        return (stats?["rx"] as? [String: Any])?["packets"] as? Int ?? -1
    }

    /// What a SYN flood did: frames sent and the seconds the generator took.
    struct FloodResult {
        var sent: Int
        var seconds: Double
        var rate: Double { seconds > 0 ? Double(sent) / seconds : 0 }
    }

    /// Sends `count` TCP SYNs to `port` from random spoofed sources as fast as trafgen can (it shares
    /// a CPU with the gateway's softirq on veth, so its rate is what the gateway absorbs); stops
    /// after `count` frames or `seconds`, whichever comes first.
    func spoofedSYNFlood(count: Int, port: Int = 443, seconds: Int = 30) throws -> FloodResult {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-synflood-\(getpid())-\(UUID().uuidString.prefix(8)).cfg")
        defer { try? FileManager.default.removeItem(at: config) }
        try """
            { eth(da=\(try gatewayMAC())), ipv4(sa=198.18.0.0, sa[1]=drnd(18, 19), sa[2]=drnd(), sa[3]=drnd(), \
            da=\(gatewayAddress), id=drnd(), ttl=64), tcp(sp=drnd(), dp=\(port), seq=drnd(), syn, win=64240) }
            """.write(to: config, atomically: true, encoding: .utf8)
        let result = try Command.run(["ip", "netns", "exec", client, "timeout", String(seconds), "trafgen", "--dev", clientInterface,
                                      "--cpus", "1", "--num", String(count), "--conf", config.path], check: false)
        let output = result.stdout + result.stderr
        // "   300000 packets outgoing" and "   2 sec, 233044 usec on CPU0 (300000 packets)"
        let sent = output.firstMatch(of: /(\d+) packets outgoing/).flatMap { Int($0.1) } ?? 0
        let elapsed = output.firstMatch(of: /(\d+) sec, (\d+) usec/).map { Double($0.1)! + Double($0.2)! / 1e6 } ?? 0
        guard sent > 0, elapsed > 0 else { throw Command.Failure(command: ["trafgen"], result: result) }
        return FloodResult(sent: sent, seconds: elapsed)
    }
}

/// A legitimate HTTPS client in the client namespace, started in the background: `keepAlive`
/// sends every request on one connection (reconnecting only after a failure), otherwise each request
/// opens a new TLS connection. Requests are scheduled at a fixed rate for a fixed time.
final class HTTPSClient {
    struct Outcome: Decodable, CustomStringConvertible {
        var ok: Int
        var failed: Int
        var p50_ms: Double
        var p99_ms: Double
        var errors: [String]
        var successPercent: Double { ok + failed == 0 ? 0 : 100 * Double(ok) / Double(ok + failed) }
        var description: String {
            "\(ok) ok, \(failed) failed (\(String(format: "%.1f", successPercent))%), p50 \(p50_ms) ms, p99 \(p99_ms) ms"
                + (errors.isEmpty ? "" : "; errors: \(errors.prefix(3).joined(separator: " | "))")
        }
    }

    private let script: NamespacePython

    init(lab: LabNetwork, keepAlive: Bool, requestsPerSecond: Double, seconds: Double, port: Int = 443) throws {
        script = try NamespacePython(namespace: lab.client, script: """
            import http.client, json, ssl, time
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            keep_alive, rate, seconds = \(keepAlive ? "True" : "False"), \(requestsPerSecond), \(seconds)
            latencies, failed, errors, connection = [], 0, [], None
            print("ready")
            start = time.monotonic()
            for i in range(int(rate * seconds)):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                began = time.monotonic()
                try:
                    if connection is None:
                        connection = http.client.HTTPSConnection("\(lab.gatewayAddress)", \(port), context=context, timeout=3)
                    connection.request("GET", "/")
                    response = connection.getresponse()
                    body = response.read()
                    if response.status != 200 or body != b"ok\\n":
                        raise Exception("status %d" % response.status)
                    latencies.append((time.monotonic() - began) * 1000)
                except Exception as e:
                    failed += 1
                    errors.append(repr(e)[:120])
                    connection = None
                if not keep_alive and connection is not None:
                    connection.close()
                    connection = None
            latencies.sort()
            pick = lambda q: round(latencies[min(len(latencies) - 1, int(len(latencies) * q))], 1) if latencies else -1
            print(json.dumps({"ok": len(latencies), "failed": failed, "p50_ms": pick(0.5), "p99_ms": pick(0.99), "errors": errors}))
            """)
    }

    /// Waits for the schedule to end and returns what happened.
    func finish() throws -> Outcome {
        let output = script.finish()
        guard let line = output.split(separator: "\n").last, let outcome = try? JSONDecoder().decode(Outcome.self, from: Data(line.utf8)) else {
            throw Command.Failure(command: ["https client"], result: .init(status: 1, stdout: output, stderr: "no outcome"))
        }
        return outcome
    }
}

/// Samples a namespace's conntrack entry count every 50 ms on a thread of its own; `stop()`
/// returns the highest count seen.
final class ConntrackPeak: @unchecked Sendable {
    private let namespace: NetworkNamespace
    private let lock = NSLock()
    private var peak = 0
    private var running = true
    private var finished = false

    init(namespace: String) throws {
        self.namespace = try NetworkNamespace(named: namespace)
        Thread.detachNewThread { [self] in sample() }
    }

    private func sample() {
        while lock.withLock({ running }) {
            if let count = (try? Conntrack.count(in: namespace)) ?? nil { lock.withLock { peak = max(peak, count) } }
            usleep(50_000)
        }
        lock.withLock { finished = true }
    }

    func stop() -> Int {
        lock.withLock { running = false }
        while !lock.withLock({ finished }) { usleep(10_000) }
        return lock.withLock { peak }
    }
}
