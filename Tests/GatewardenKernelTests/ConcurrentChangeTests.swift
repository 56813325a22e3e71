import CGatewardenABI
import Foundation
import GatewardenKernel
import Testing
import GatewardenCore
import GatewardenDataPlane

/// Changes to one namespace run one at a time: concurrent `load`s and `block`s end with XDP and
/// nftables running the same policy and every ban that was reported done in force.
@Suite("Concurrent changes", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct ConcurrentChangeTests {
    /// Two policies told apart by their protected ports, in XDP's gw_ports and in nftables' rules.
    static let policies: [(ports: [UInt16], yaml: String)] = [
        ([80, 443], "protected_ports: [80, 443]\n"),
        ([8080, 9443], "protected_ports: [8080, 9443]\n"),
    ]

    @Test("concurrent loads of two policies and blocks agree in both layers, round after round")
    func loadsAndBlocksAgree() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        defer { _ = try? GatewardenBinary.run(["unload"] + arguments, check: false) }
        let files = try Self.policies.enumerated().map { index, policy in
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-concurrent-\(getpid())-\(index).yaml")
            try policy.yaml.write(to: file, atomically: true, encoding: .utf8)
            return file
        }
        defer { for file in files { try? FileManager.default.removeItem(at: file) } }
        try GatewardenBinary.run(["load", "--policy", files[0].path] + arguments)
        // A large blocklist, as a busy gateway has: every change re-reads it, which takes a while.
        let blocklist = try lab.gatewayInstance().maps().blocklist
        for index in 0..<20_000 {
            try blocklist.update(gw_block_entry(), at: try AddressPrefix("172.16.\(index / 256).\(index % 256)/32").lpmKey)
        }

        var blocked: [AddressPrefix] = []
        for round in 0..<4 {
            var commands: [[String]] = []
            for index in 0..<6 {
                commands.append([GatewardenBinary.path, "load", "--policy", files[index % 2].path] + arguments)
            }
            // Blocks spread over the time the loads take, so they meet every step of them.
            for index in 0..<8 {
                // Each in its own /16, so a prefilter rebuilt from a stale snapshot misses it.
                let prefix = "10.\(round * 10 + index).0.0/16"
                commands.append(["sh", "-c", "sleep \(Double(index) * 0.25); exec \"$0\" \"$@\"", GatewardenBinary.path,
                                 "block", prefix] + arguments)
                blocked.append(try AddressPrefix(prefix))
            }
            let results = try ConcurrentCommands.run(commands)
            for (command, result) in zip(commands, results) {
                #expect(result.status == 0, "round \(round): \(command.joined(separator: " ")): \(result.stderr)")
            }

            let maps = try lab.gatewayInstance().maps()
            let xdpPorts = try #require(try maps.limits()).protectedPorts
            let table = try lab.inGateway(["nft", "list", "table", "inet", "gatewarden"]).stdout
            let nftRunning = Self.policies.filter { table.contains(Self.nftPortSet($0.ports)) }.map(\.ports)
            #expect(nftRunning == [xdpPorts], "round \(round): XDP protects \(xdpPorts), nftables \(nftRunning)")

            let bans = Set(try maps.bans().map(\.prefix))
            #expect(blocked.allSatisfy(bans.contains), "round \(round): lost bans \(blocked.filter { !bans.contains($0) })")
            // The program looks a source up only when the prefilter and the count say the list may hold it.
            let configuration = try #require(try maps.config.value(at: UInt32(0), as: gw_config.self))
            #expect(Int(configuration.blocklist_entries) == bans.count, "round \(round): gw_config counts \(configuration.blocklist_entries) bans of \(bans.count)")
            var filter: [UInt64] = []
            try maps.listFilter.forEachEntry(keyType: UInt32.self, valueType: UInt64.self) { _, word in filter.append(word[0]) }
            let lists = try maps.allowlist.keys(as: gw_lpm_key.self).map(AddressPrefix.init(lpmKey:)) + Array(bans)
            #expect(filter == ListFilter.words(for: lists), "round \(round): the list prefilter misses a ban")
        }
    }

    @Test("a change waits for the one in progress, then gives up naming its pid")
    func loserWaitsThenFailsNamingHolder() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        defer { _ = try? GatewardenBinary.run(["unload"] + arguments, check: false) }
        try GatewardenBinary.run(["load"] + arguments)

        let namespace = try NetworkNamespace(named: lab.gateway)
        let held = try ChangeLock.acquire(for: namespace, command: "load (held by the test)")
        let started = ContinuousClock.now
        let refused = try GatewardenBinary.run(["block", "203.0.113.0/24", "--lock-wait", "1s"] + arguments, check: false)
        let waited = ContinuousClock.now - started
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("pid \(getpid()), `gatewarden load (held by the test)`"), "stderr: \(refused.stderr)")
        #expect(refused.stderr.contains("waiting for pid \(getpid())"), "stderr: \(refused.stderr)")
        #expect(waited >= .seconds(1))
        #expect(try lab.gatewayInstance().maps().bans().isEmpty, "a refused block changed nothing")

        // Released while a change waits: the change goes ahead.
        let waiting = try ConcurrentCommands.start([GatewardenBinary.path, "block", "203.0.113.0/24"] + arguments)
        usleep(300_000)
        held.release()
        let result = waiting.finish()
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(try lab.gatewayInstance().maps().bans().map(\.prefix) == [try AddressPrefix("203.0.113.0/24")])
    }

    /// How NFTablesRuleset writes a set of ports in the rule that sends SYNs to synproxy.
    static func nftPortSet(_ ports: [UInt16]) -> String {
        "tcp dport { " + ports.map(String.init).joined(separator: ", ") + " } tcp flags"
    }
}

/// Runs commands at the same time, each with its output in files (pipes could fill and stall them).
enum ConcurrentCommands {
    final class Running {
        let process: Process
        let output: URL
        let errors: URL

        init(process: Process, output: URL, errors: URL) {
            self.process = process
            self.output = output
            self.errors = errors
        }

        func finish() -> Command.Result {
            process.waitUntilExit()
            defer {
                try? FileManager.default.removeItem(at: output)
                try? FileManager.default.removeItem(at: errors)
            }
            return Command.Result(status: process.terminationStatus,
                                  stdout: (try? String(contentsOf: output, encoding: .utf8)) ?? "",
                                  stderr: (try? String(contentsOf: errors, encoding: .utf8)) ?? "")
        }
    }

    static func start(_ arguments: [String]) throws -> Running {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-cmd-\(getpid())-\(UUID().uuidString)")
        let output = base.appendingPathExtension("out"), errors = base.appendingPathExtension("err")
        guard FileManager.default.createFile(atPath: output.path, contents: nil),
              FileManager.default.createFile(atPath: errors.path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: base.path])
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
        return Running(process: process, output: output, errors: errors)
    }

    static func run(_ commands: [[String]]) throws -> [Command.Result] {
        try commands.map(start).map { $0.finish() }
    }
}
