import CGatewardenABI
import Foundation
import GatewardenKernel
import Testing
import GatewardenDataPlane

/// `gatewarden serve` against the real tools that will read it: promtool, the Python client's
/// strict OpenMetrics parser, a real Prometheus, curl with TLS and basic auth.
@Suite("Exporter, verified by Prometheus's own tools", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct ExporterTests {
    /// A lab with Gatewarden loaded, a ban, and traffic that passes and is dropped.
    private func loadedLab() throws -> (LabNetwork, [String]) {
        let lab = try LabNetwork()
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        do {
            try GatewardenBinary.run(["load"] + arguments)
            try GatewardenBinary.run(["block", "198.51.100.0/24", "--for", "1h"] + arguments)
            try lab.sendSYNs(count: 5, port: 443)
            _ = try lab.startUDPFlood(port: 443, seconds: 5, maximumPackets: 5000).finish()
        } catch {
            _ = try? GatewardenBinary.run(["unload"] + arguments, check: false)
            lab.remove()
            throw error
        }
        return (lab, arguments)
    }

    private func teardown(_ lab: LabNetwork, _ arguments: [String]) {
        _ = try? GatewardenBinary.run(["unload"] + arguments, check: false)
        lab.remove()
    }

    private func temporaryDirectory(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-\(name)-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test("text passes promtool check metrics; OpenMetrics passes the strict parser; no duplicate series")
    func formats() throws {
        let (lab, arguments) = try loadedLab()
        defer { teardown(lab, arguments) }
        let exporter = try ExporterProcess(arguments: ["--netns", lab.gateway])
        defer { exporter.stop() }
        let directory = try temporaryDirectory("formats")
        defer { try? FileManager.default.removeItem(at: directory) }

        let text = try exporter.get()
        let textFile = directory.appendingPathComponent("metrics.txt").path
        try text.write(toFile: textFile, atomically: true, encoding: .utf8)
        let lint = try Command.run(["sh", "-c", "promtool check metrics < \(textFile)"], check: false)
        #expect(lint.status == 0)
        #expect(lint.stdout.isEmpty && lint.stderr.isEmpty, "promtool findings: \(lint.stdout)\(lint.stderr)")

        let openMetrics = try exporter.get(headers: ["Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5"])
        #expect(openMetrics.hasSuffix("# EOF\n"))
        let openMetricsFile = directory.appendingPathComponent("metrics.om").path
        try openMetrics.write(toFile: openMetricsFile, atomically: true, encoding: .utf8)
        let parse = try Command.run(["/usr/bin/python3", "-c", """
            import sys
            from prometheus_client.openmetrics.parser import text_string_to_metric_families
            families = list(text_string_to_metric_families(open(sys.argv[1]).read()))
            print(len(families), sum(len(f.samples) for f in families))
            """, openMetricsFile], check: false)
        #expect(parse.status == 0, "OpenMetrics parser: \(parse.stderr)")

        var seen = Set<Substring>()
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let series = line[..<(line.lastIndex(of: " ") ?? line.endIndex)]
            #expect(seen.insert(series).inserted, "duplicate series \(series)")
        }
        for name in ["gatewarden_up", "gatewarden_build_info", "gatewarden_nft_table_loaded", "gatewarden_xdp_attached",
                     "gatewarden_xdp_requested_mode", "gatewarden_xdp_packets_total", "gatewarden_xdp_map_entries",
                     "gatewarden_xdp_map_capacity", "gatewarden_blocklist_entries", "gatewarden_top_source_dropped_packets",
                     "gatewarden_scrape_duration_seconds", "process_resident_memory_bytes", "process_cpu_seconds_total"] {
            #expect(text.contains("\n\(name)"), "missing \(name)")
        }
        #expect(Scrape.value(text, "gatewarden_top_source_dropped_packets", ["source": lab.clientAddress, "prefix": "32"]) ?? 0 > 0)
        #expect(Scrape.value(text, "gatewarden_blocklist_entries", ["family": "ipv4", "layer": "xdp"]) == 1)
    }

    @Test("a real Prometheus scrapes it and its API returns what the traffic produced")
    func prometheusScrape() throws {
        let (lab, arguments) = try loadedLab()
        defer { teardown(lab, arguments) }
        let exporter = try ExporterProcess(arguments: ["--netns", lab.gateway])
        defer { exporter.stop() }
        let before = try exporter.get()
        let expected = try #require(Scrape.value(before, "gatewarden_xdp_packets_total",
                                                 ["interface": lab.gatewayInterface, "action": "drop", "reason": "rate_ip"]))
        #expect(expected > 0)

        let prometheus = try PrometheusServer(targets: ["127.0.0.1:\(exporter.port)"])
        defer { prometheus.stop() }
        let query = "gatewarden_xdp_packets_total{action=\"drop\",reason=\"rate_ip\",interface=\"\(lab.gatewayInterface)\"}"
        let value = try prometheus.waitForValue(query: query, timeout: 30)
        #expect(value == expected)
        #expect(try prometheus.waitForValue(query: "gatewarden_up{collector=\"xdp\"}", timeout: 5) == 1)
        #expect(try prometheus.waitForValue(query: "gatewarden_nft_table_loaded", timeout: 5) == 1)
    }

    @Test("basic auth: 401 without or with wrong credentials, 200 with right ones; TLS with the test CA; HEAD; gzip")
    func authTLSHeadGzip() throws {
        let (lab, arguments) = try loadedLab()
        defer { teardown(lab, arguments) }
        let directory = try temporaryDirectory("tls")
        defer { try? FileManager.default.removeItem(at: directory) }
        let ca = directory.appendingPathComponent("ca.pem").path
        try TestCertificates.make(in: directory.path)
        let webConfig = directory.appendingPathComponent("web.yml").path
        try """
        tls_server_config:
          cert_file: server.pem
          key_file: server.key
        basic_auth_users:
          prometheus: \(WebConfigFixture.hash)
        """.write(toFile: webConfig, atomically: true, encoding: .utf8)

        let credentials = ["--cacert", ca, "-u", "prometheus:scrape-secret"]
        let exporter = try ExporterProcess(arguments: ["--netns", lab.gateway, "--web.config.file", webConfig],
                                           scheme: "https", curlOptions: credentials)
        defer { exporter.stop() }

        func status(_ options: [String]) throws -> String {
            try exporter.curl("/metrics", ["-o", "/dev/null", "-w", "%{http_code}"], options: options).stdout
        }
        #expect(try status(["--cacert", ca]) == "401")
        #expect(try status(["--cacert", ca, "-u", "prometheus:wrong"]) == "401")
        #expect(try status(["--cacert", ca, "-u", "nobody:scrape-secret"]) == "401")
        #expect(try status(credentials) == "200")
        // Plain HTTP on the TLS port, and an unknown CA, both fail.
        #expect((try? Command.run(["curl", "-sf", "--max-time", "5", "http://127.0.0.1:\(exporter.port)/metrics"]))?.status == nil)
        #expect((try? Command.run(["curl", "-sf", "--max-time", "5", "https://localhost:\(exporter.port)/metrics"]))?.status == nil)

        let head = try exporter.curl("/metrics", ["-I"])
        #expect(head.stdout.contains("HTTP/1.1 200"))
        #expect(head.stdout.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"))
        #expect(!head.stdout.contains("gatewarden_up"))

        let zipped = try exporter.curl("/metrics", ["-H", "Accept-Encoding: gzip", "-D", "-", "-o", directory.appendingPathComponent("m.gz").path])
        #expect(zipped.stdout.contains("Content-Encoding: gzip"))
        let unzipped = try Command.run(["gzip", "-dc", directory.appendingPathComponent("m.gz").path]).stdout
        let plain = try exporter.get()
        let names = { (text: String) in Set(text.split(separator: "\n").filter { $0.hasPrefix("# TYPE") }) }
        #expect(!unzipped.isEmpty)
        #expect(names(unzipped) == names(plain))
    }

    @Test("a bad web config is a startup error naming the problem")
    func badWebConfig() throws {
        let directory = try temporaryDirectory("badweb")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("web.yml").path
        try "basic_auth_users:\n  prometheus: not-a-hash\n".write(toFile: path, atomically: true, encoding: .utf8)
        let result = try GatewardenBinary.run(["serve", "--web.listen-address", "127.0.0.1:0", "--web.config.file", path], check: false)
        #expect(result.status != 0)
        #expect(result.stderr.contains("\(path):2:"))
        #expect(result.stderr.contains("basic_auth_users.prometheus"))
        #expect(!FileManager.default.fileExists(atPath: "\(GatewardenBinary.stateDirectory)/host"),
                "refused input starts nothing: no enforce loop, no ban store")
    }

    @Test("serve's limits are its flags: one address holds --web.max-connections-per-ip, a trickled request is cut at --web.read-timeout, scrapes go on")
    func slowClientLimits() throws {
        // An empty namespace of its own to read: nothing of the host's is touched.
        let namespace = "gwt-slow-\(getpid())"
        try Command.run(["ip", "netns", "add", namespace])
        defer { _ = try? Command.run(["ip", "netns", "del", namespace], check: false) }
        let exporter = try ExporterProcess(arguments: ["--netns", namespace, "--web.read-timeout", "3s",
                                                       "--web.max-connections-per-ip", "3"])
        defer { exporter.stop() }

        // Six clients from one address, each sending a header byte every 0.2 s and never finishing.
        let sockets = try (0..<6).map { _ in try TricklingSocket(port: exporter.port, from: "127.0.0.5") }
        let start = Date()
        var closedAt: [Double?] = Array(repeating: nil, count: sockets.count)
        var closedAfterOneSecond: Int?
        var scrapes: [Bool] = []
        while Date().timeIntervalSince(start) < 10, closedAt.contains(nil) {
            let elapsed = Date().timeIntervalSince(start)
            for (index, socket) in sockets.enumerated() where closedAt[index] == nil {
                if socket.isClosedByServer { closedAt[index] = elapsed } else { socket.sendByte() }
            }
            if elapsed >= 1, closedAfterOneSecond == nil {
                closedAfterOneSecond = closedAt.compactMap { $0 }.count
                scrapes.append(try exporter.get().contains("gatewarden_up{collector=\"nftables\"} 1"))
            }
            usleep(200_000)
        }
        // The three over the per-address limit were refused at once; the deadline is not due before 3 s.
        #expect(closedAfterOneSecond == 3)
        #expect(scrapes == [true])
        // The other three were cut at the deadline although they never went quiet.
        let cut = closedAt.compactMap { $0 }.sorted().suffix(3)
        #expect(closedAt.allSatisfy { $0 != nil })
        #expect(cut.allSatisfy { $0 >= 2.9 }, "closed at \(cut)")
    }

    @Test("with 100k tracked sources the output holds at most K offender series, and the right ones")
    func topKBounded() throws {
        let lab = try LabNetwork()
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        defer { teardown(lab, arguments) }
        try GatewardenBinary.run(["load"] + arguments)
        let maps = try lab.gatewayInstance().maps()
        // 100,000 tracked sources in 10.0.0.0/8 with distinct drop counts (source i dropped i packets),
        // registered as offenders the way the program does: with the largest power of two <= the count.
        for i in 1...100_000 {
            let address: [UInt8] = [10, UInt8(i >> 16), UInt8((i >> 8) & 0xff), UInt8(i & 0xff)]
            let key = XDPMaps.key(address: address)
            try maps.sources.update(gw_bucket(tat_ns: 0, dropped_packets: UInt64(i), list_verdict: 0), at: key)
            if i > 100_000 - 60_000 {
                let bound = UInt64(1) << UInt64(63 - UInt64(i).leadingZeroBitCount)
                try maps.offenders.update(bound, at: gw_offender_key(addr: key, kind: GW_OFFENDER_SOURCE.rawValue))
            }
        }
        let exporter = try ExporterProcess(arguments: ["--netns", lab.gateway, "--collector.xdp.top-k", "7"])
        defer { exporter.stop() }
        let text = try exporter.get()
        let offenders = text.split(separator: "\n").filter { $0.hasPrefix("gatewarden_top_source_dropped_packets{") }
        #expect(offenders.count == 7)
        let values = offenders.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
        #expect(values == (99_994...100_000).reversed().map(Double.init))
        #expect(offenders.first?.contains("source=\"10.1.134.160\"") == true) // 100000 = 0x0186a0
        #expect(Scrape.value(text, "gatewarden_xdp_map_entries", ["map": "gw_offenders"]) == 0,
                "entries count what the program inserted, not what a test wrote")
    }
}

enum WebConfigFixture {
    /// bcrypt (cost 10) of "scrape-secret".
    static let hash = "$2b$10$nh7N5M1AAtFwmjKUjTVgS.5uds7ta/B5T6rtFQT/YhLADAUvhzs1."
}

/// A client that sends the start of a request and then one header byte at a time.
private final class TricklingSocket {
    let fd: Int32

    init(port: Int, from source: String) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        func address(_ text: String, _ port: Int) -> sockaddr_in {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr(text)
            return address
        }
        var local = address(source, 0), remote = address("127.0.0.1", port)
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) } }
        let connected = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, size) } }
        guard fd >= 0, bound == 0, connected == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw SocketFailure(description: "connect from \(source) to port \(port): \(reason)")
        }
        let start = Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".utf8)
        _ = send(fd, start, start.count, Int32(MSG_NOSIGNAL))
    }

    struct SocketFailure: Error, CustomStringConvertible { let description: String }

    deinit { close(fd) }

    func sendByte() {
        _ = send(fd, "a", 1, Int32(MSG_NOSIGNAL))
    }

    /// Whether the server has closed the connection (end of file or reset), without waiting.
    var isClosedByServer: Bool {
        var byte: UInt8 = 0
        let count = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
    }
}
