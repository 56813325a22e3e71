import Foundation
import GatewardenCore
import GatewardenDataPlane
import GatewardenKernel

/// A lab with Gatewarden loaded on its gateway, for the enforce loop and `bans`: loads policies,
/// starts and kills `gatewarden enforce`, reads bans from `bans list --json`, the XDP blocklist and
/// the nftables ban sets. `remove()` kills every process it started (by PID), unloads and deletes
/// the namespaces, their ban store and the policy file.
///
///     let lab = try EnforceLab()
///     defer { lab.remove() }
///     try lab.load(EnforceLab.policy(enforce: "{interval: 1s, violations: 2, window: 3s}"))
///     let enforce = try lab.startEnforce()
///     let ban = try lab.waitForBan(of: lab.clientPrefix, seconds: 10)
final class EnforceLab {
    let lab: LabNetwork
    let policyFile: URL
    private var processes: [EnforceProcess] = []

    var arguments: [String] { ["--interface", lab.gatewayInterface, "--netns", lab.gateway] }
    var clientPrefix: AddressPrefix { get throws { try AddressPrefix("\(lab.clientAddress)/32") } }
    /// The namespace's ban store and `enforce-statistics.json` (what `enforce` and `bans` use).
    var stateDirectory: String { "\(GatewardenBinary.stateDirectory)/netns/\(lab.gateway)" }

    init() throws {
        lab = try LabNetwork()
        policyFile = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-enforce-\(getpid())-\(lab.gateway).yaml")
    }

    /// A policy with every limit off but a per-source one, escalation off, and `extra` appended.
    static func policy(perSource: String = "{rate: 100/second, burst: 100}", enforce: String, extra: String = "") -> String {
        """
        limits:
          per_source: \(perSource)
          per_subnet: off
          new_connections_per_source: off
          concurrent_connections_per_source: off
          conntrack_cap: off
          auth_per_subnet: off
        escalation: off
        enforce: \(enforce)

        """ + extra
    }

    /// Writes the policy file and loads it.
    func load(_ yaml: String, extraArguments: [String] = []) throws {
        try writePolicy(yaml)
        try GatewardenBinary.run(["load", "--policy", policyFile.path] + arguments + extraArguments)
    }

    func writePolicy(_ yaml: String) throws {
        try yaml.write(to: policyFile, atomically: true, encoding: .utf8)
    }

    /// Starts `gatewarden enforce` on the gateway namespace with the policy file, in the background.
    func startEnforce(extra: [String] = []) throws -> EnforceProcess {
        let process = try EnforceProcess(arguments: ["enforce", "--netns", lab.gateway, "--policy", policyFile.path] + extra,
                                         logName: "\(lab.gateway)-\(processes.count)")
        processes.append(process)
        return process
    }

    /// Runs `gatewarden enforce --intervals N` to completion.
    @discardableResult
    func enforce(intervals: Int, check: Bool = true) throws -> Command.Result {
        try GatewardenBinary.run(["enforce", "--netns", lab.gateway, "--policy", policyFile.path, "--intervals", String(intervals)], check: check)
    }

    func remove() {
        for process in processes { process.kill(signal: SIGKILL) }
        _ = try? GatewardenBinary.run(["unload"] + arguments, check: false)
        try? FileManager.default.removeItem(at: policyFile)
        lab.remove()
    }

    // MARK: Reading bans

    /// One object of `bans list --json`.
    struct ListedBan: Decodable, Equatable {
        var prefix: String
        var origin: String
        var layers: [String]
        var created: String
        var expires: String?
        var offence: Int
        var applied: Bool

        var createdDate: Date? { ISO8601DateFormatter().date(from: created) }
        var expiresDate: Date? { expires.flatMap { ISO8601DateFormatter().date(from: $0) } }
        /// The ban's length in seconds (nil: until removed).
        var length: TimeInterval? {
            guard let created = createdDate, let expires = expiresDate else { return nil }
            return expires.timeIntervalSince(created)
        }
    }

    func bans() throws -> [ListedBan] {
        let output = try GatewardenBinary.run(["bans", "list", "--json", "--netns", lab.gateway]).stdout
        return try JSONDecoder().decode([ListedBan].self, from: Data(output.utf8))
    }

    /// Polls `bans list` until a ban of `prefix` (of `origin`, applied or observed as `applied`) is
    /// listed with every layer it should have; nil when none came in time.
    func waitForBan(of prefix: AddressPrefix, origin: String = "rate_source", applied: Bool = true, offence: Int? = nil,
                    seconds: Double) throws -> (ban: ListedBan, after: TimeInterval)? {
        let start = Date()
        while Date().timeIntervalSince(start) < seconds {
            if let ban = try bans().first(where: {
                $0.prefix == prefix.description && $0.origin == origin && $0.applied == applied
                    && (offence == nil || $0.offence == offence)
                    && (!applied || Set($0.layers) == ["xdp", "nft"])
            }) {
                return (ban, Date().timeIntervalSince(start))
            }
            usleep(100_000)
        }
        return nil
    }

    /// What the XDP blocklist holds for `prefix`: holders and each one's expiry (boot clock, 0 for good).
    func xdpHolds(_ prefix: AddressPrefix) throws -> BanHolds? {
        try lab.gatewayInstance().maps().holds()[prefix]
    }

    /// The prefixes of an nftables set of the gateway table, or nil without the table.
    func nftElements(_ set: String) throws -> Set<String>? {
        let result = try lab.inGateway(["nft", "-j", "list", "set", "inet", "gatewarden", set], check: false)
        guard result.status == 0 else { return nil }
        return Set(NFTablesBanSink.elements(inListing: result.stdout).map(\.0.description))
    }

    func tableExists() throws -> Bool {
        try lab.inGateway(["nft", "list", "table", "inet", "gatewarden"], check: false).status == 0
    }

    /// The enforce loop's figures, written after every interval.
    func statistics() -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: "\(stateDirectory)/enforce-statistics.json") else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(data)) as? [String: Any]
    }

    // MARK: Traffic

    /// One TCP connection from the client to port 80 of the gateway: synproxy completes the handshake
    /// (nothing needs to listen), which marks the client a real host for the enforce loop. A source
    /// still banned from an earlier offence gets no answer: that is not an error here.
    func completeHandshake() throws {
        try Command.run(["ip", "netns", "exec", lab.client, "python3", "-c", """
            import socket
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(("\(lab.gatewayAddress)", 80))
            except OSError:
                pass
            s.close()
            """])
    }

    /// Sends UDP from the client to `port` at `packetsPerSecond`, paced, for `seconds`, in the
    /// background; `finish()` returns how many were handed to the kernel. With `handshake`, the client
    /// first completes a TCP handshake to port 80, as a real host does: the loop bans no source without one.
    func startPacedUDP(port: Int = 443, packetsPerSecond: Double, seconds: Double, handshake: Bool = true) throws -> RunningFlood {
        if handshake { try completeHandshake() }
        let script = """
        import socket, time
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        start = time.monotonic()
        total = int(\(packetsPerSecond) * \(seconds))
        sent = 0
        for k in range(total):
            delay = start + k / \(packetsPerSecond) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                s.sendto(b"x" * 64, ("\(lab.gatewayAddress)", \(port)))
                sent += 1
            except OSError:
                pass
        print(sent)
        """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", lab.client, "python3", "-c", script]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        return RunningFlood(process: process, output: output)
    }

    /// Sends `count` UDP packets to `port`, 10 ms apart (well under any limit here), and waits. No handshake
    /// first: a banned client's connect would wait out its timeout, and the probe would come too late.
    func probe(port: Int, count: Int = 20) throws -> Int {
        try startPacedUDP(port: port, packetsPerSecond: 100, seconds: Double(count) / 100, handshake: false).finish()
    }
}

/// A `gatewarden` process started in the background, its output kept in a log file; killed by PID.
final class EnforceProcess {
    let process = Process()
    let logPath: String

    init(arguments: [String], logName: String) throws {
        logPath = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-enforce-\(logName).log").path
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = URL(fileURLWithPath: GatewardenBinary.path)
        process.arguments = arguments
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try log.close()
    }

    var pid: Int32 { process.processIdentifier }

    /// Sends `signal` and waits for the process to end; safe to call more than once.
    func kill(signal: Int32) {
        guard process.isRunning else { cleanUp(); return }
        Foundation.kill(pid, signal)
        process.waitUntilExit()
        cleanUp()
    }

    /// What it printed so far.
    var log: String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    private var kept: String?

    private func cleanUp() {
        if kept == nil { kept = log }
        try? FileManager.default.removeItem(atPath: logPath)
    }

    /// The output, also after the log file was removed.
    var output: String { kept ?? log }
}

extension RunningFlood {
    /// Ends the sender now (by its PID) and waits for it. SIGKILL: the test runner's children
    /// inherit SIGTERM blocked, and a sender that ignores it would keep flooding.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        _ = output.fileHandleForReading.readDataToEndOfFile()
    }
}
