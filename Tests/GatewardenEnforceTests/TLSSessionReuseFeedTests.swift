import Foundation
import Testing
import GatewardenCore
import GatewardenPolicy
@testable import GatewardenEnforce

/// The feed end to end over a real file: what nginx would write, and what it should never be fooled by.
@Suite("The TLS-session-reuse feed over a log file")
struct TLSSessionReuseFeedTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    private func feed(_ log: TemporaryLog) -> TLSSessionReuseFeed {
        TLSSessionReuseFeed(settings: TLSSessionReuseSettings(log: log.path))
    }

    /// `count` connections from `network`.x, each a fresh session (a bot) or resumed (a browser).
    private func connections(_ count: Int, from network: String, resumed: Bool = false, firstConnection: Int = 5000,
                             time: Double = 1_800_000_000) -> String {
        (0..<count).map { LogText.line(time: time, address: "\(network).\($0 + 1)", connection: firstConnection + $0,
                                       reused: resumed && $0 > 0 ? "r" : ".") }.joined()
    }

    @Test("bots that never resume are flagged once, clients that resume are not; statistics say what was read")
    func flagsBots() throws {
        let log = try TemporaryLog()
        try log.append("gw1 1799999999.000 203.0.113.1 1 1 . TLSv1.2 200 0.001\n")   // before the feed started
        let feed = feed(log)
        #expect(feed.poll(now: now).isEmpty)
        try log.append(connections(20, from: "203.0.113") + connections(20, from: "192.0.2", resumed: true, firstConnection: 6000))
        #expect(feed.poll(now: now.addingTimeInterval(1)).map(\.description) == ["203.0.113.0/24"])
        #expect(feed.poll(now: now.addingTimeInterval(2)).isEmpty, "each flag is returned once")
        let stats = feed.statistics
        #expect(stats.linesRead == 40 && stats.connectionsJudged == 40 && stats.prefixesFlagged == 1)
        #expect(stats.linesSkippedTotal == 0)
        #expect(stats.trackedPrefixes == 2, "the bots' 5 connections after the flag start a new count")
        #expect(stats.lagSeconds == 2 && stats.newestLineTime == now && stats.isFollowing)
    }

    @Test("other formats, garbage, a 1 MB line, broken gw1 lines and a truncated last line flag nobody and are counted by reason")
    func hostileLog() throws {
        let log = try TemporaryLog()
        let feed = feed(log)
        _ = feed.poll(now: now)
        var text = ""
        for index in 0..<100 {
            text += "203.0.113.\(index) - - [01/Jan/2027:00:00:00 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"curl\"\n"
            text += "gw1 1800000000.000 203.0.113.\(index) \(index + 10) 1 . TLSv1.2 200\n"         // a field short
            text += "gw1 1800000000.000 203.0.113.\(index) \(index + 10) 1 .  TLSv1.2 200 0.000\n"  // two spaces
        }
        try log.append(text)
        try log.append(Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7919) }))
        try log.append("\n" + String(repeating: "gw1 ", count: 1 << 18) + "\n")
        try log.append("gw1 1800000000.000 203.0.113.5 7 1 . TLSv1.2 20")   // no newline yet
        #expect(feed.poll(now: now).isEmpty)
        let stats = feed.statistics
        #expect(stats.connectionsJudged == 0 && stats.prefixesFlagged == 0 && stats.trackedPrefixes == 0)
        #expect(stats.linesSkipped[.otherFormat]! >= 100)
        #expect(stats.linesSkipped[.malformed] == 200)
        #expect(stats.linesSkipped[.tooLong]! >= 1)
        #expect(stats.linesRead == stats.linesSkippedTotal)
    }

    @Test("rotation by rename and by copytruncate while bots write: every connection counted once")
    func rotationCountsOnce() throws {
        let log = try TemporaryLog()
        let feed = TLSSessionReuseFeed(settings: { var s = TLSSessionReuseSettings(log: log.path); s.minConnections = 30; return s }())
        _ = feed.poll(now: now)
        try log.append(connections(10, from: "203.0.113"))
        #expect(feed.poll(now: now).isEmpty)
        try log.append(connections(5, from: "203.0.113", firstConnection: 5010))
        let moved = try log.rename(to: "gatewarden.log.1")
        try moved.append(connections(5, from: "203.0.113", firstConnection: 5015))
        try log.append(connections(5, from: "203.0.113", firstConnection: 5020))
        #expect(feed.poll(now: now).isEmpty, "25 connections")
        try log.copyTruncate(to: "gatewarden.log.2")
        try log.append(connections(4, from: "203.0.113", firstConnection: 5025))
        #expect(feed.poll(now: now).isEmpty, "29 connections")
        try log.append(connections(1, from: "203.0.113", firstConnection: 5029))
        #expect(feed.poll(now: now).map(\.description) == ["203.0.113.0/24"], "the 30th")
        #expect(feed.statistics.connectionsJudged == 30 && feed.statistics.renames == 1 && feed.statistics.truncations == 1)
    }

    @Test("lag is the age of the newest line at the poll")
    func lag() throws {
        let log = try TemporaryLog()
        let feed = feed(log)
        _ = feed.poll(now: now)
        #expect(feed.statistics.lagSeconds == nil)
        try log.append(LogText.line(time: 1_800_000_000.5))
        _ = feed.poll(now: now.addingTimeInterval(30))
        #expect(feed.statistics.lagSeconds == 29.5)
    }
}
