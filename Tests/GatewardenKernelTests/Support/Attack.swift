import Foundation
import GatewardenKernel

/// The seed's attacks and a legitimate client, run from the lab's client namespace against the
/// gateway. Every generator is bounded in count and in time.
extension LabNetwork {
    /// Spoofed sources live in 198.18.0.0/15 (RFC 2544's benchmark range): 512 /24s, so a flood at
    /// the generator's full speed stays under every per-/24 limit, as a flood from the internet would.
    static let spoofedRange = "198.18.0.0/15"

    /// The CPU the flood generator and the legitimate client run on, as if they shared an uplink.
    /// The gateway's receive work for them then starts on that CPU in every round. With XDP on a
    /// veth, receive runs in the veth's NAPI poll, which keeps running on the CPU that first
    /// scheduled it for as long as packets keep coming: unpinned, a flood stayed on whichever CPU
    /// the client's last packet had scheduled it from, often in the other CPU's ksoftirqd beside
    /// nginx, and rounds split into two speeds (135k and 180k SYN/s here) by where the work landed,
    /// not by what it cost.
    static let floodCPU = 0

    /// Routes replies to spoofed sources (SYN-ACKs, cookies) back into the client namespace, where
    /// nothing answers them: they stay inside the lab.
    func routeSpoofedRange() throws {
        try Command.run(["ip", "-n", gateway, "route", "add", Self.spoofedRange, "via", clientAddress])
    }

    /// The gateway interface's MAC address (the flood writes whole frames).
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

    /// What a SYN flood did: frames the gateway interface received, and the seconds the generator sent for.
    struct FloodResult {
        var received: Int
        var seconds: Double
        /// SYNs the gateway took off the wire per second: on veth the gateway's softirq runs on the
        /// generator's CPU, inside its send, so the generator only goes as fast as the gateway absorbs.
        var absorbedPerSecond: Double { seconds > 0 ? Double(received) / seconds : 0 }
    }

    /// Sends `count` TCP SYNs to `port` from random spoofed sources as fast as the client's CPU can
    /// hand frames to its veth, then stops (bounded by `seconds` too). The frames are built before the
    /// clock starts; a blocking AF_PACKET socket waits, rather than fails, when the gateway pushes back.
    /// The generator runs on `floodCPU`.
    func spoofedSYNFlood(count: Int, port: Int = 443, seconds: Int = 30) throws -> FloodResult {
        let before = try gatewayReceivedPackets()
        let result = try Command.run(["ip", "netns", "exec", client, "taskset", "-c", String(Self.floodCPU), "timeout", String(seconds), "python3", "-c", """
            import array, errno, random, socket, struct, sys, time
            def checksum(data):
                total = sum(array.array("H", data + b"\\0" * (len(data) % 2)))
                total = (total >> 16) + (total & 0xffff)
                return ~(total + (total >> 16)) & 0xffff
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            sock.bind(("\(clientInterface)", 0))
            ethernet = bytes.fromhex("\(try gatewayMAC())".replace(":", "")) + sock.getsockname()[4] + b"\\x08\\x00"
            destination = socket.inet_aton("\(gatewayAddress)")
            rng = random.Random(\(count))
            frames = []
            for _ in range(\(count)):
                source = bytes((198, 18 + rng.getrandbits(1), rng.getrandbits(8), rng.getrandbits(8)))   # 198.18.0.0/15
                tcp = struct.pack("!HHIIBBHHH", 1024 + rng.getrandbits(15), \(port), rng.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
                tcp = tcp[:16] + struct.pack("H", checksum(source + destination + struct.pack("!BBH", 0, 6, 20) + tcp)) + tcp[18:]
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, rng.getrandbits(16), 0, 64, 6, 0, source, destination)
                frames.append(ethernet + ip[:10] + struct.pack("H", checksum(ip)) + ip[12:] + tcp)
            send, start = sock.send, time.monotonic()
            for frame in frames:
                while True:
                    try:
                        send(frame)
                        break
                    except OSError as e:   # the queue is full: the gateway is behind; send again
                        if e.errno != errno.ENOBUFS:
                            raise
            print(time.monotonic() - start)
            """])
        let elapsed = Double(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        let received = try gatewayReceivedPackets() - before
        guard received > count / 2, elapsed > 0 else { throw Command.Failure(command: ["syn flood"], result: result) }
        return FloodResult(received: received, seconds: elapsed)
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
        /// Requests that took over half a second: a retransmitted handshake packet (a new
        /// connection's requests take a few milliseconds here otherwise).
        var slow: Int
        var errors: [String]
        var successPercent: Double { ok + failed == 0 ? 0 : 100 * Double(ok) / Double(ok + failed) }
        var description: String {
            "\(ok) ok, \(failed) failed (\(String(format: "%.1f", successPercent))%), p50 \(p50_ms) ms, p99 \(p99_ms) ms, \(slow) over 0.5 s"
                + (errors.isEmpty ? "" : "; errors: \(errors.prefix(3).joined(separator: " | "))")
        }
    }

    private let script: NamespacePython

    convenience init(lab: LabNetwork, keepAlive: Bool, requestsPerSecond: Double, seconds: Double, port: Int = 443, cpu: Int? = nil) throws {
        try self.init(namespace: lab.client, server: lab.gatewayAddress, keepAlive: keepAlive, requestsPerSecond: requestsPerSecond,
                      seconds: seconds, port: port, cpu: cpu)
    }

    /// A client in `namespace` of the nginx at `server`.
    init(namespace: String, server: String, keepAlive: Bool, requestsPerSecond: Double, seconds: Double, port: Int = 443,
         cpu: Int? = nil, nice: Int? = nil) throws {
        script = try NamespacePython(namespace: namespace, cpu: cpu, nice: nice, script: """
            import http.client, json, ssl, time
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            keep_alive, rate, seconds = \(keepAlive ? "True" : "False"), \(requestsPerSecond), \(seconds)
            latencies, failed, errors, connection = [], 0, [], None
            print("ready")
            # Paced like a user: after a slow request the next one follows at the rate, never a burst of
            # every request the slow one delayed (which would be a flood of new connections of its own).
            due = time.monotonic()
            for i in range(int(rate * seconds)):
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                due = max(due, time.monotonic()) + 1 / rate
                began = time.monotonic()
                try:
                    if connection is None:
                        # 10 s per step, as patient as a browser or curl's usual connect timeout: a request
                        # slowed by a retransmitted handshake packet succeeds late, and shows in p99.
                        connection = http.client.HTTPSConnection("\(server)", \(port), context=context, timeout=10)
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
            slow = sum(1 for latency in latencies if latency > 500)
            print(json.dumps({"ok": len(latencies), "failed": failed, "p50_ms": pick(0.5), "p99_ms": pick(0.99), "slow": slow,
                              "errors": errors}))
            """)
    }

    /// Ends the client at once (after `finish()`, does nothing).
    func stop() { script.stop() }

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

    /// Safe to call more than once.
    func stop() -> Int {
        lock.withLock { running = false }
        while !lock.withLock({ finished }) { usleep(10_000) }
        return lock.withLock { peak }
    }
}
