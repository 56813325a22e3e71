import Foundation
import GatewardenCore
import GatewardenDataPlane
import GatewardenEnforce
import GatewardenKernel
import GatewardenPolicy
import Testing

/// The enforce loop driven through the library (`EnforceLoop.runOnce`), where the test decides when
/// an interval runs: the cap on new bans under a spoofed flood, and how long a restore of 100,000
/// bans takes.
@Suite("Enforce loop driven interval by interval", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct EnforceLoopTests {
    /// A loop on the lab's gateway with `yaml` loaded, its store and statistics in a folder of its own.
    private func loop(_ lab: EnforceLab, _ yaml: String) throws -> EnforceLoop {
        try lab.load(yaml)
        let policy = try PolicyParser.parse(yaml: yaml, file: lab.policyFile.path)
        try FileManager.default.createDirectory(atPath: lab.stateDirectory, withIntermediateDirectories: true)
        let store = try BanStore(directory: lab.stateDirectory)
        return try EnforceLoop(namespace: try NetworkNamespace(named: lab.lab.gateway), policy: policy, store: store,
                           stateDirectory: lab.stateDirectory, log: { _ in })
    }

    @Test("a spoofed flood from 100,000 sources bans nobody (no source completed a handshake); were they all real, at most max_new_bans new bans an interval, the cap counted")
    func spoofedFloodHitsTheCap() throws {
        let lab = try EnforceLab()
        defer { lab.remove() }
        let loop = try loop(lab, EnforceLab.policy(perSource: "{rate: 1/second, burst: 1}",
                                                   enforce: "{interval: 1s, violations: 1, window: 1s, ban_for: 1h, max_new_bans: 50}"))
        loop.runOnce()   // takes the counts as they are
        var sent = try lab.spoofedUDP(sources: 100_000, packetsEach: 2)
        print("enforce: spoofed flood of \(sent) frames from 100,000 sources")
        let spoofed = loop.runOnce()
        #expect(spoofed.errors.isEmpty, "\(spoofed.errors)")
        #expect(spoofed.promoted.isEmpty, "forged sources are throttled, never banned")
        #expect(spoofed.unverified > 1000, "\(spoofed.unverified)")

        // Now as if every one of them had completed a handshake: real, and thousands of them.
        let elements = (0..<100_000).map { "198.\(18 + ($0 >> 16)).\(($0 >> 8) & 255).\($0 & 255)" }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-verified-\(getpid()).nft")
        try "add element inet gatewarden verified_v4 { \(elements.joined(separator: ", ")) }\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        try lab.lab.inGateway(["nft", "-f", file.path])
        sent = try lab.spoofedUDP(sources: 100_000, packetsEach: 2)

        var perInterval: [Int] = []
        for _ in 0..<3 {
            let started = ContinuousClock.now
            let outcome = loop.runOnce()
            print("enforce: interval promoted \(outcome.promoted.count), deferred \(outcome.deferred), took \(ContinuousClock.now - started)")
            #expect(outcome.errors.isEmpty, "\(outcome.errors)")
            perInterval.append(outcome.promoted.count)
        }
        #expect(perInterval.allSatisfy { $0 <= 50 }, "new bans per interval: \(perInterval)")
        #expect(perInterval[0] == 50, "thousands of violators: the cap is reached")
        let statistics = try #require(EnforceStatistics.read(fromDirectory: lab.stateDirectory))
        #expect(statistics.capHits > 0)
        #expect(statistics.deferred > 1000)
        #expect(statistics.unverified > 1000)
        let banned = try loop.book.store.activeBans(at: Date())
        #expect(banned.count == perInterval.reduce(0, +))
        #expect(banned.allSatisfy { $0.origin == .rateSource && $0.prefix.description.hasPrefix("198.1") })
        #expect(try lab.nftElements("block_v4")?.count == banned.count)
        #expect(try lab.lab.gatewayInstance().maps().holds().count == banned.count)
    }

    @Test("restore: 100,000 stored bans into empty kernel layers in one interval (figures), and bans per second per layer")
    func restoreHundredThousand() throws {
        let lab = try EnforceLab()
        defer { lab.remove() }
        let count = 100_000
        let loop = try loop(lab, EnforceLab.policy(enforce: "{interval: 10s, ban_for: 1h}", extra: "blocklist: {size: 262144}\n"))
        let now = Date()
        let bans = try (0..<count).map { index in
            // 10.0.0.0/8 and 11.0.0.0/8 /32s: distinct, never overlapping.
            Ban(prefix: try Self.address(10, index), origin: .rateSource, created: now, expires: now.addingTimeInterval(3600))
        }
        var clock = ContinuousClock.now
        try loop.book.store.add(bans)
        let storeTime = ContinuousClock.now - clock

        clock = ContinuousClock.now
        let outcome = loop.runOnce()
        let restoreTime = ContinuousClock.now - clock
        #expect(outcome.errors.isEmpty, "\(outcome.errors)")
        #expect(outcome.written[.xdp] == count && outcome.written[.nft] == count, "\(outcome.written)")
        #expect(try lab.lab.gatewayInstance().maps().holds().count == count)
        #expect(try lab.nftElements("block_v4")?.count == count)

        clock = ContinuousClock.now
        let again = loop.runOnce()
        let steadyTime = ContinuousClock.now - clock
        #expect(again.written.values.allSatisfy { $0 == 0 }, "a quiet interval writes nothing: \(again.written)")
        // The full check the loop makes once a minute: the layers hold what the store says, to the
        // second, so nothing is written again.
        clock = ContinuousClock.now
        let reconcile = try loop.book.apply(now: Date())
        let reconcileTime = ContinuousClock.now - clock
        #expect(reconcile.errors.isEmpty, "\(reconcile.errors)")
        #expect(reconcile.written.values.allSatisfy { $0 == 0 }, "a full check rewrites nothing: \(reconcile.written)")

        // Each layer alone, 100,000 more bans beside the 100,000 there.
        let namespace = try NetworkNamespace(named: lab.lab.gateway)
        let more = Dictionary(uniqueKeysWithValues: try (0..<count).map { (try Self.address(11, $0), Optional(now.addingTimeInterval(3600))) })
        let xdp = XDPBanSink(namespace: namespace), nft = NFTablesBanSink(namespace: namespace)
        clock = ContinuousClock.now
        _ = try xdp.installed(now: now)
        let xdpListing = ContinuousClock.now - clock
        clock = ContinuousClock.now
        _ = try nft.installed(now: now)
        let nftListing = ContinuousClock.now - clock
        clock = ContinuousClock.now
        let xdpWritten = try xdp.apply([.enforce: more], now: now)
        let xdpTime = ContinuousClock.now - clock
        clock = ContinuousClock.now
        let nftWritten = try nft.apply([.enforce: more], now: now)
        let nftTime = ContinuousClock.now - clock
        #expect(xdpWritten == count && nftWritten == count)

        func seconds(_ duration: Duration) -> Double { Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18 }
        print("""
            enforce restore of \(count) bans: store write \(String(format: "%.2f", seconds(storeTime))) s; \
            one runOnce into empty XDP + nftables \(String(format: "%.2f", seconds(restoreTime))) s (goal < 20 s); \
            next interval with nothing to do \(String(format: "%.2f", seconds(steadyTime))) s; \
            full check of both layers against the store \(String(format: "%.2f", seconds(reconcileTime))) s
            enforce sinks with \(count) bans held: listing XDP \(String(format: "%.2f", seconds(xdpListing))) s, \
            nftables \(String(format: "%.2f", seconds(nftListing))) s; \(count) more: XDP \(String(format: "%.2f", seconds(xdpTime))) s \
            (\(Int(Double(count) / seconds(xdpTime))) bans/s, goal >= 10000), nftables \(String(format: "%.2f", seconds(nftTime))) s \
            (\(Int(Double(count) / seconds(nftTime))) bans/s, goal >= 5000)
            """)
    }

    private static func address(_ first: Int, _ index: Int) throws -> AddressPrefix {
        try AddressPrefix("\(first).\((index >> 16) & 255).\((index >> 8) & 255).\(index & 255)/32")
    }
}

extension EnforceLab {
    /// Sends `packetsEach` UDP frames to port 443 from each of `sources` spoofed addresses of
    /// 198.18.0.0/15 (raw frames from the client namespace, bounded by 60 s); returns the frames sent.
    func spoofedUDP(sources: Int, packetsEach: Int) throws -> Int {
        let result = try Command.run(["ip", "netns", "exec", lab.client, "timeout", "60", "python3", "-c", """
            import array, errno, socket, struct
            def checksum(data):
                total = sum(array.array("H", data + b"\\0" * (len(data) % 2)))
                total = (total >> 16) + (total & 0xffff)
                return ~(total + (total >> 16)) & 0xffff
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            sock.bind(("\(lab.clientInterface)", 0))
            ethernet = bytes.fromhex("\(try lab.gatewayMAC())".replace(":", "")) + sock.getsockname()[4] + b"\\x08\\x00"
            destination = socket.inet_aton("\(lab.gatewayAddress)")
            udp = struct.pack("!HHHH", 40000, 443, 8 + 16, 0) + b"x" * 16
            sent = 0
            for index in range(\(sources)):
                source = bytes((198, 18 + (index >> 16), (index >> 8) & 255, index & 255))
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), index & 0xffff, 0, 64, 17, 0, source, destination)
                frame = ethernet + ip[:10] + struct.pack("H", checksum(ip)) + ip[12:] + udp
                for _ in range(\(packetsEach)):
                    while True:
                        try:
                            sock.send(frame)
                            sent += 1
                            break
                        except OSError as e:
                            if e.errno != errno.ENOBUFS:
                                raise
            print(sent)
            """])
        return Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }
}
