import Testing
@testable import GatewardenEnforce

@Suite("Judging networks by TLS session reuse")
struct SessionReuseJudgeTests {
    static let start: Int64 = 1_800_000_000_000

    private func judge(minimum: Int = 15, ratio: Double = 0.95, window: UInt64 = 600, ipv6Prefix: Int = 64,
                       configure: (inout SessionReuseJudge.Configuration) -> Void = { _ in }) -> SessionReuseJudge {
        var configuration = SessionReuseJudge.Configuration(minimumConnections: minimum, newSessionRatio: ratio, windowSeconds: window,
                                                            ipv4Prefix: 24, ipv6Prefix: ipv6Prefix)
        configure(&configuration)
        var judge = SessionReuseJudge(configuration: configuration)
        judge.advance(toMilliseconds: Self.start)
        return judge
    }

    /// A line at `seconds` after the start; connection numbers stay high unless given, so no restart shows.
    private func line(_ address: String, resumed: Bool = false, at seconds: Double = 0, connection: UInt64? = nil,
                      requests: UInt64 = 1, tls: Bool = true) -> NginxLogLine {
        var bytes = Array(address.utf8)
        let parsed = bytes.withUnsafeMutableBytes { ClientAddress(text: UnsafeRawBufferPointer($0)[...]) }
        return NginxLogLine(timeMilliseconds: Self.start + Int64(seconds * 1000), address: parsed!, connection: connection ?? 1_000_000,
                            connectionRequests: requests, session: tls ? (resumed ? .resumed : .new) : .notTLS,
                            status: 200, requestTimeMilliseconds: 1)
    }

    /// Feeds `lines` as a poll at the time of the newest would, and returns the networks flagged, as text.
    private func flagged(_ judge: inout SessionReuseJudge, _ lines: [NginxLogLine]) -> [String] {
        judge.advance(toMilliseconds: lines.map(\.timeMilliseconds).max() ?? Self.start)
        return lines.compactMap { if case .flagged(let network) = judge.judge($0) { network.description } else { nil } }
    }

    @Test("exactly min_connections new sessions flag the /24; one fewer does not")
    func minimumEdge() {
        var judge = judge()
        #expect(flagged(&judge, (0..<14).map { line("203.0.113.\($0)") }) == [])
        #expect(flagged(&judge, [line("203.0.113.200")]) == ["203.0.113.0/24"])
        #expect(judge.trackedNetworks == 0, "a flagged network starts again from nothing")
    }

    @Test("the ratio must be exceeded: 19 new of 20 is 0.95, not more than 0.95; 20 of 21 is")
    func ratioEdge() {
        var judge = judge(minimum: 20)
        var lines = (0..<19).map { line("198.51.100.\($0)") }
        lines.insert(line("198.51.100.50", resumed: true), at: 3)
        #expect(flagged(&judge, lines) == [])
        #expect(flagged(&judge, [line("198.51.100.9")]) == ["198.51.100.0/24"])

        // Two resumed in 21: 19 new of 21 is 0.905, not enough.
        var resuming = self.judge(minimum: 20)
        #expect(flagged(&resuming, (0..<19).map { line("192.0.2.\($0)") } + [line("192.0.2.1", resumed: true), line("192.0.2.2", resumed: true)]) == [])
    }

    @Test("a network of clients that resume is never flagged, however many connections")
    func resumingClients() {
        var judge = judge()
        let lines = (0..<1000).map { line("192.0.2.\($0 % 50)", resumed: $0 % 10 != 0, at: Double($0) / 10) }
        #expect(flagged(&judge, lines) == [])
    }

    @Test("only the first request of a connection counts: keep-alive and HTTP/2 repeats are not connections")
    func firstRequestOnly() {
        var judge = judge()
        var lines: [NginxLogLine] = []
        for index in 0..<14 {
            let connection = UInt64(5000 + index)
            lines += (1...10).map { line("203.0.113.\(index)", connection: connection, requests: $0) }
        }
        #expect(flagged(&judge, lines) == [], "140 requests, 14 connections")
        #expect(judge.judge(line("203.0.113.1", requests: 2)) == .ignored(.repeatRequest))
        #expect(flagged(&judge, [line("203.0.113.99")]) == ["203.0.113.0/24"], "the 15th connection")
    }

    @Test("plain HTTP is not evidence")
    func plainHTTP() {
        var judge = judge()
        #expect(flagged(&judge, (0..<100).map { line("203.0.113.\($0)", tls: false) }) == [])
        #expect(judge.judge(line("203.0.113.1", tls: false)) == .ignored(.notTLS))
        #expect(judge.trackedNetworks == 0)
    }

    @Test("IPv6 is grouped by /64 (or the configured prefix); neighbouring /64s are apart")
    func ipv6Grouping() {
        var judge = judge()
        #expect(flagged(&judge, (0..<14).map { line("2001:db8:0:1::\(String($0, radix: 16))") }) == [])
        #expect(flagged(&judge, (0..<14).map { line("2001:db8:0:2:\(String($0, radix: 16))::1") }) == [])
        #expect(flagged(&judge, [line("2001:db8:0:1:ffff:ffff:ffff:ffff")]) == ["2001:db8:0:1::/64"])

        var wide = self.judge(ipv6Prefix: 48)
        let lines = (0..<15).map { line("2001:db8:5:\(String($0, radix: 16))::1") }
        #expect(flagged(&wide, lines) == ["2001:db8:5::/48"])
    }

    @Test("connections older than the window no longer count, and quiet networks are forgotten")
    func windowPruning() {
        var judge = judge(window: 600)
        #expect(flagged(&judge, (0..<10).map { line("203.0.113.\($0)", at: Double($0)) }) == [])
        #expect(judge.trackedNetworks == 1)
        // Ten minutes and a bucket later the first ten are gone: ten more are not enough.
        #expect(flagged(&judge, (0..<10).map { line("203.0.113.\($0)", at: 700 + Double($0)) }) == [])
        // Within the window they add up.
        #expect(flagged(&judge, (0..<5).map { line("203.0.113.\($0)", at: 800 + Double($0)) }) == ["203.0.113.0/24"])

        #expect(flagged(&judge, [line("198.51.100.1", at: 900)]) == [])
        #expect(judge.trackedNetworks == 1, "the flagged one was dropped")
        judge.advance(toMilliseconds: Self.start + 2000 * 1000)
        #expect(judge.trackedNetworks == 0, "advancing the clock alone prunes")
        #expect(judge.judge(line("198.51.100.1", at: 900)) == .ignored(.stale))
    }

    @Test("a line dated far after now is refused, and does not push the window on")
    func futureLine() {
        var judge = judge()
        #expect(judge.judge(line("203.0.113.1", at: 86400)) == .ignored(.future))
        #expect(flagged(&judge, (0..<15).map { line("203.0.113.\($0)", at: 1) }) == ["203.0.113.0/24"])
    }

    @Test("after an nginx restart each address's first new session is discounted for a window; bots are caught again after it")
    func restart() {
        var judge = judge()
        // Before: a busy server, connection numbers in the hundred thousands.
        _ = flagged(&judge, (0..<10).map { line("192.0.2.\($0)", resumed: true, connection: 100_000 + UInt64($0)) })
        // Restart: numbers from 1 again. Twenty returning clients of one /24, each's first connection
        // new (the cache is empty), then resumed.
        var after: [NginxLogLine] = []
        var connection: UInt64 = 1
        for client in 0..<20 {
            after.append(line("198.51.100.\(client)", at: 10, connection: connection))
            connection += 1
        }
        #expect(flagged(&judge, after) == [], "the forced new sessions are not evidence")
        #expect(judge.restartsDetected == 1)
        #expect(judge.judge(line("198.51.100.0", at: 11, connection: 100)) == .counted, "a second new session of one address counts")
        // Bots from other addresses: each address's first connection in the grace window is discounted ...
        #expect(flagged(&judge, (0..<15).map { line("203.0.113.\($0)", at: 20, connection: 200 + UInt64($0)) }) == [])
        // ... but their second ones count.
        #expect(flagged(&judge, (0..<15).map { line("203.0.113.\($0)", at: 30, connection: 300 + UInt64($0)) }) == ["203.0.113.0/24"])
        // After the window, first connections count again.
        #expect(flagged(&judge, (0..<15).map { line("203.0.113.\(100 + $0)", at: 700, connection: 400 + UInt64($0)) }) == ["203.0.113.0/24"])
    }

    @Test("a restart shows in plain-HTTP first requests too, and not in a long keep-alive connection's later requests")
    func restartSignals() {
        var judge = judge()
        _ = flagged(&judge, [line("192.0.2.1", resumed: true, connection: 100_000)])
        #expect(judge.judge(line("192.0.2.1", connection: 7, requests: 40)) == .ignored(.repeatRequest))
        #expect(judge.restartsDetected == 0)
        #expect(judge.judge(line("192.0.2.2", connection: 3, tls: false)) == .ignored(.notTLS))
        #expect(judge.restartsDetected == 1)
        #expect(judge.judge(line("192.0.2.3", connection: 4)) == .ignored(.restartDiscount))
    }

    @Test("connection numbers a little out of order (slow requests log late) are no restart")
    func reorderingIsNoRestart() {
        var judge = judge()
        for (index, connection) in [1000, 1003, 1001, 1005, 1002, 1010, 999, 1004].enumerated() {
            _ = judge.judge(line("192.0.2.\(index)", resumed: true, connection: UInt64(connection)))
        }
        #expect(judge.restartsDetected == 0)
    }

    @Test("memory is bounded: a flood of a million distinct networks is tracked up to the cap, the rest counted as untracked, and the window frees them")
    func boundedMemory() {
        var judge = judge { $0.maximumTrackedNetworks = 10_000 }
        judge.advance(toMilliseconds: Self.start + 100_000)
        var untracked = 0
        for index in 0..<1_000_000 {
            let address = ClientAddress(high: 0, low: UInt64(0x0a00_0000 + index * 256), isIPv4: true)
            let line = NginxLogLine(timeMilliseconds: Self.start + Int64(index / 10), address: address, connection: UInt64(10_000 + index),
                                    connectionRequests: 1, session: .new, status: 200, requestTimeMilliseconds: 0)
            if judge.judge(line) == .ignored(.untracked) { untracked += 1 }
        }
        #expect(judge.trackedNetworks == 10_000)
        #expect(untracked == 990_000)
        judge.advance(toMilliseconds: Self.start + 3600 * 1000)
        #expect(judge.trackedNetworks == 0)
    }
}
