import CGatewardenABI
import CLibBPF
import Foundation
import GatewardenKernel
import GatewardenPolicy
import Testing
import GatewardenDataPlane

/// `gatewarden load --observe` and `gatewarden load` on a real veth, under traffic; and `load` over
/// an instance whose pinned maps an earlier version laid out differently.
@Suite("Observe mode and upgrades on a real interface", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct ObserveSwitchTests {
    static let flooderAddress = "192.0.2.3"

    /// Runs a Python script in the client namespace; `finish()` returns what it printed as a number.
    private func startInClient(_ lab: LabNetwork, _ script: String) throws -> RunningFlood {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", lab.client, "python3", "-c", script]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        return RunningFlood(process: process, output: output)
    }

    @Test("a legitimate client loses no packet while load --observe and load alternate under a flood")
    func switchingUnderTraffic() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        try Command.run(["ip", "-n", lab.client, "addr", "add", "\(Self.flooderAddress)/24", "dev", lab.clientInterface])
        // A per-source limit well under the subnet's, so one flooder alone cannot spend its /24's budget
        // in enforce mode: what is measured is whether observe mode charges the subnet.
        let policy = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-observe-\(getpid()).yaml")
        try "limits: {per_source: {rate: 100/second, burst: 200}, per_subnet: {rate: 500/second, burst: 1000}}\n"
            .write(to: policy, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: policy) }
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway, "--policy", policy.path]
        defer { _ = try? GatewardenBinary.run(["unload", "--interface", lab.gatewayInterface, "--netns", lab.gateway], check: false) }
        try GatewardenBinary.run(["load"] + arguments)
        try lab.addWitness(sources: [lab.clientAddress, Self.flooderAddress])
        let maps = try lab.gatewayInstance().maps()

        // The client: 80 packets/s, under 100/s burst 200 per source. The flooder, in the
        // same /24, sends as fast as it can: over its own limit, and in observe mode far over the
        // subnet's 500/s, which must not be charged for packets that enforce mode would have dropped.
        let seconds = 7.0
        let client = try startInClient(lab, """
        import socket, time
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("\(lab.clientAddress)", 0))
        start = time.monotonic()
        sent = 0
        while sent < \(Int(seconds * 80)):
            delay = start + sent / 80.0 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            s.sendto(b"legit", ("\(lab.gatewayAddress)", 443))
            sent += 1
        print(sent)
        """)
        // Paced at 20,000 packets/s: 200 times its limit, yet not so much that the packets observe mode
        // passes overflow the gateway's own backlog (a quiet machine's Python sends 300,000/s, and the
        // stack, not Gatewarden, then loses what it cannot take: what observe mode means).
        let flooder = try startInClient(lab, """
        import socket, time
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("\(Self.flooderAddress)", 0))
        start = time.monotonic()
        end = start + \(seconds)
        sent = 0
        while time.monotonic() < end:
            if sent % 200 == 0:
                delay = start + sent / 20000.0 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            try:
                s.sendto(b"x" * 64, ("\(lab.gatewayAddress)", 443))
                sent += 1
            except OSError:
                time.sleep(0.0001)
        print(sent)
        """)
        usleep(500_000)
        var modes: [String] = []
        for _ in 0..<3 {
            for observe in [true, false] {
                try GatewardenBinary.run(["load"] + (observe ? ["--observe"] : []) + arguments)
                let inForce = try #require(try maps.limits()).observe
                modes.append(inForce ? "observe" : "enforce")
                #expect(inForce == observe)
                usleep(700_000)
            }
        }
        let legitSent = client.finish()
        let floodSent = flooder.finish()
        usleep(200_000)

        let legitSeen = try lab.witnessPackets(from: lab.clientAddress)
        let counters = Dictionary(uniqueKeysWithValues: try maps.readStatistics().map { ("\($0.action)/\($0.reason)", $0.packets) })
        print("observe/enforce switching: modes \(modes); client sent \(legitSent), reached the stack \(legitSeen); "
            + "flooder sent \(floodSent); counters \(counters.filter { $0.value > 0 })")
        #expect(legitSent == Int(seconds * 80))
        #expect(legitSeen == legitSent, "every packet of the legitimate client passed XDP")
        #expect(try maps.droppedPackets(address: [192, 0, 2, 2]) == nil, "the client was never over a limit")
        #expect(counters["drop/rate_ip", default: 0] > 0, "enforce phases dropped the flooder")
        #expect(counters["would_drop/rate_ip", default: 0] > 0, "observe phases counted the flooder as would_drop")
        #expect(counters["drop/rate_subnet", default: 0] == 0 && counters["would_drop/rate_subnet", default: 0] == 0)

        let enforcing = try GatewardenBinary.run(["status", "--netns", lab.gateway]).stdout
        #expect(enforcing.contains("mode:      enforce"))
        try GatewardenBinary.run(["load", "--observe"] + arguments)
        let observing = try GatewardenBinary.run(["status", "--netns", lab.gateway]).stdout
        #expect(observing.contains("mode:      observe"))
    }

    // MARK: Upgrades

    /// Pins, in place of `name`, a map of another layout: what an earlier version left there.
    private func pinOlderLayout(_ layout: PinLayout, name: String, type: bpf_map_type, keySize: UInt32, valueSize: UInt32,
                                maxEntries: UInt32, value: [UInt8]? = nil) throws {
        let fd = bpf_map_create(type, name, keySize, valueSize, maxEntries, nil)
        guard fd >= 0 else { throw KernelError.fromErrno("create map \(name)") }
        defer { close(fd) }
        if var value {
            var key: UInt32 = 0
            guard bpf_map_update_elem(fd, &key, &value, 0) == 0 else { throw KernelError.fromErrno("write map \(name)") }
        }
        unlink(layout.map(name))
        guard bpf_obj_pin(fd, layout.map(name)) == 0 else { throw KernelError.fromErrno("pin map \(name)") }
    }

    @Test("load replaces pinned maps an earlier version laid out differently, keeping bans; refuses for a map with state")
    func upgradeReplacesChangedMaps() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        defer { _ = try? GatewardenBinary.run(["unload"] + arguments, check: false) }
        try GatewardenBinary.run(["load"] + arguments)
        try GatewardenBinary.run(["block", "\(lab.clientAddress)/32", "--for", "1h"] + arguments)
        let layout = try lab.gatewayLayout()

        // The previous ABI (5): 2 actions x 9 reasons of counters, a 56-byte config whose list
        // generation (offset 48) has reached 1000. Verdicts cached under generations up to 1000 may sit
        // in buckets, so the generation must carry over, never restart.
        var oldConfig = [UInt8](repeating: 0, count: 56)
        oldConfig[32] = 64; oldConfig[36] = 24; oldConfig[48] = 0xe8; oldConfig[49] = 0x03
        try pinOlderLayout(layout, name: XDPMaps.Name.statistics, type: BPF_MAP_TYPE_PERCPU_ARRAY, keySize: 4, valueSize: 16, maxEntries: 18)
        try pinOlderLayout(layout, name: XDPMaps.Name.config, type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 56, maxEntries: 1,
                           value: oldConfig)
        let blocklistBefore = try BPFMap(pinnedAt: layout.map(XDPMaps.Name.blocklist)).info.id

        let upgrade = try GatewardenBinary.run(["load"] + arguments)
        print("upgrade: \(upgrade.stderr)")
        #expect(upgrade.stderr.contains("replaced 2 pinned map(s)"))
        let statistics = GW_ACTION_COUNT.rawValue * GW_REASON_COUNT.rawValue
        #expect(upgrade.stderr.contains("gw_stats: percpu_array, key 4 B, value 16 B, 18 entries -> percpu_array, key 4 B, value 16 B, \(statistics) entries"))
        #expect(upgrade.stderr.contains("gw_config: array, key 4 B, value 56 B"))
        let maps = try lab.gatewayInstance().maps()
        #expect(maps.statistics.info.maxEntries == GW_ACTION_COUNT.rawValue * GW_REASON_COUNT.rawValue)
        #expect(maps.config.info.valueSize == MemoryLayout<gw_config>.size)
        #expect(maps.blocklist.info.id == blocklistBefore, "the blocklist map itself was reused")
        #expect(try maps.bans().map(\.prefix.description) == ["\(lab.clientAddress)/32"])
        #expect(try maps.config.value(at: UInt32(0), as: gw_config.self)!.list_generation > 1000)
        // The default policy's limits, and (generic mode on this veth, enforce mode) SYN cookies on.
        var limits = try #require(try maps.limits())
        #expect(limits.synCookies != nil)
        limits.synCookies = nil
        #expect(limits == Policy.builtInDefault.xdpLimits)
        #expect(!FileManager.default.fileExists(atPath: layout.map("pending-" + XDPMaps.Name.statistics)))
        _ = try lab.startUDPFlood(port: 443, seconds: 1, maximumPackets: 20).finish()
        #expect(try maps.packets(action: "drop", reason: "blocklist") == 20, "the ban is enforced, counted in the new map")
        #expect(try GatewardenBinary.run(["status", "--netns", lab.gateway]).stdout.contains("mode:      enforce"))

        // A map that holds state (here the offenders) is never replaced: the load is refused, naming it.
        let programBefore = try lab.gatewayInstance().link.info().programID
        let statisticsBefore = maps.statistics.info.id
        try pinOlderLayout(layout, name: XDPMaps.Name.offenders, type: BPF_MAP_TYPE_LRU_HASH, keySize: 20, valueSize: 16, maxEntries: 1024)
        let refused = try GatewardenBinary.run(["load", "--observe"] + arguments, check: false)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("map gw_offenders pinned at"))
        #expect(refused.stderr.contains("nothing was changed"))
        #expect(try lab.gatewayInstance().link.info().programID == programBefore)
        #expect(try BPFMap(pinnedAt: layout.map(XDPMaps.Name.statistics)).info.id == statisticsBefore)
        #expect(try lab.gatewayInstance().maps().limits()?.observe == false)
    }
}
