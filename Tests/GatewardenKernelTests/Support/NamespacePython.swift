import Foundation

/// A Python script running inside a network namespace, started in the background. It prints
/// `ready` once listening; `finish()` waits for it and returns the rest of what it printed.
///
/// `ip netns exec` forks rather than execs, so signalling it would leave the script running:
/// instead every script exits as soon as its standard input closes, which `stop()` does.
final class NamespacePython {
    let process = Process()
    private let output = Pipe()
    private let input = Pipe()

    private static let watchdog = """
        import os, sys, threading
        threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()

        """

    /// `cpu` pins the script to one CPU.
    /// `nice`: a niceness for the script (negative: ahead of other processes on its CPU).
    init(namespace: String, cpu: Int? = nil, nice: Int? = nil, script: String, arguments: [String] = []) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", namespace] + (nice.map { ["nice", "-n", String($0)] } ?? [])
            + (cpu.map { ["taskset", "-c", String($0)] } ?? [])
            + ["python3", "-u", "-c", Self.watchdog + script] + arguments
        process.standardOutput = output
        process.standardInput = input
        process.standardError = FileHandle.standardError
        try process.run()
        // Wait for the script's "ready" line (bounded).
        var seen = ""
        let deadline = Date().addingTimeInterval(10)
        while !seen.contains("ready\n"), Date() < deadline, process.isRunning {
            let data = output.fileHandleForReading.availableData
            if data.isEmpty { usleep(10_000) } else { seen += String(decoding: data, as: UTF8.self) }
        }
        guard seen.contains("ready\n") else { throw Command.Failure(command: ["python3", "(script)"], result: .init(status: -1, stdout: seen, stderr: "never ready")) }
    }

    func finish() -> String {
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try? input.fileHandleForWriting.close()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Ends the script (by closing its input) and waits for it.
    func stop() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

extension LabNetwork {
    /// Counts UDP packets arriving at the gateway's `port` until 1 s passes without one.
    func udpReceiver(port: Int, ipv6: Bool = false) throws -> NamespacePython {
        try NamespacePython(namespace: gateway, script: """
            import socket
            s = socket.socket(socket.AF_INET6 if \(ipv6 ? "True" : "False") else socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            s.bind(("", \(port)))
            s.settimeout(20)
            print("ready")
            count = 0
            try:
                s.recv(2048)
                count = 1
                s.settimeout(1)
                while True:
                    s.recv(2048)
                    count += 1
            except socket.timeout:
                pass
            print(count)
            """)
    }

    /// Sends `perSource` UDP packets from each source address (round-robin) to `destination`:`port`,
    /// as fast as it can; returns how many were handed to the kernel.
    @discardableResult
    func sendUDP(to destination: String? = nil, port: Int = 443, from sources: [String] = [], perSource: Int) throws -> Int {
        let family = (destination ?? gatewayAddress).contains(":") ? "AF_INET6" : "AF_INET"
        let result = try Command.run(["ip", "netns", "exec", client, "python3", "-c", """
            import socket
            sources = \(sources.isEmpty ? "[None]" : "[" + sources.map { "'\($0)'" }.joined(separator: ",") + "]")
            sockets = []
            for source in sources:
                s = socket.socket(socket.\(family), socket.SOCK_DGRAM)
                if source:
                    s.bind((source, 0))
                sockets.append(s)
            sent = 0
            for _ in range(\(perSource)):
                for s in sockets:
                    s.sendto(b"x" * 32, ("\(destination ?? gatewayAddress)", \(port)))
                    sent += 1
            print(sent)
            """])
        return Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// Starts `count` TCP connections to the gateway's `port` at once (non-blocking: one SYN each),
    /// then drops them. Returns the seconds from the first SYN to the last.
    @discardableResult
    func burstSYNs(count: Int, port: Int = 443) throws -> Double {
        let result = try Command.run(["ip", "netns", "exec", client, "python3", "-c", """
            import socket, time
            held = []
            start = time.monotonic()
            for _ in range(\(count)):
                s = socket.socket()
                s.setblocking(False)
                try:
                    s.connect(("\(gatewayAddress)", \(port)))
                except BlockingIOError:
                    pass
                held.append(s)
            print(time.monotonic() - start)
            time.sleep(0.3)
            for s in held:
                s.close()
            """])
        return Double(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    /// Adds addresses to the client's interface (`nodad` for IPv6, so they are usable at once).
    func addClientAddresses(_ addresses: [String], prefix: Int) throws {
        for address in addresses {
            var arguments = ["ip", "-n", client, "addr", "add", "\(address)/\(prefix)", "dev", clientInterface]
            if address.contains(":") { arguments.append("nodad") }
            try Command.run(arguments)
        }
    }

    /// Packets counted by the Gatewarden rule whose comment is `rule` (in either chain), as nft lists it.
    func ruleCounter(_ rule: String) throws -> Int {
        let listing = try inGateway(["nft", "-t", "list", "table", "inet", "gatewarden"]).stdout
        guard let line = listing.split(separator: "\n").first(where: { $0.contains("comment \"\(rule)\"") }),
              let range = line.range(of: #"packets \d+"#, options: .regularExpression) else { return -1 }
        return Int(line[range].dropFirst("packets ".count)) ?? -1
    }
}
