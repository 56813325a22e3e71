import Foundation
import Testing
import GatewardenCore
import GatewardenPolicy
import GatewardenDataPlane
import GatewardenEnforce
import GatewardenKernel

/// The TLS-session-reuse feed reading the access log of a real nginx (the companion config, TLS with a
/// shared session cache) that real clients in the lab's client namespace connect to: a bot that never
/// resumes and a client that does, each from its own /24.
@Suite("The TLS-session-reuse feed over a real nginx", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct TLSSessionReuseFeedKernelTests {
    @Test("20 connections that never resume flag 203.0.113.0/24; 20 that resume (TLS 1.2, session=) leave 192.0.2.0/24 alone")
    func flagsTheNetworkThatNeverResumes() throws {
        try SessionReuseLab.run { lab, nginx, client, feed in
            let master = try #require(nginx.pid)
            let bot = try client.resume(Array(repeating: "fresh", count: 20), version: "TLSv1_2", from: SessionReuseLab.botAddress, master: master)
            let browser = try client.resume(["fresh"] + Array(repeating: "resume", count: 19), version: "TLSv1_2",
                                            from: SessionReuseLab.browserAddress, master: master)
            #expect(bot.filter(\.reused).isEmpty, "what the bot saw")
            #expect(browser.filter(\.reused).count == 19, "what the resuming client saw")

            let flagged = SessionReuseLab.poll(feed, untilConnections: 40)
            #expect(flagged.map(\.description) == ["203.0.113.0/24"])
            let stats = feed.statistics
            #expect(stats.connectionsJudged == 40 && stats.prefixesFlagged == 1, "\(stats)")
            #expect(stats.linesSkippedTotal == 0, "\(stats.linesSkipped)")
            #expect(stats.lagSeconds.map { $0 < 30 } == true)
        }
    }
}

extension TLSSessionReuseFeedKernelTests {
    @Test("through the enforce loop: the /24 that never resumes is banned with origin tls in both layers within two intervals, the resuming one is not")
    func bansTheNetworkThatNeverResumes() throws {
        try SessionReuseLab.run { lab, nginx, client, feed in
            let instance = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
            try GatewardenBinary.run(["load"] + instance)
            defer { _ = try? GatewardenBinary.run(["unload"] + instance, check: false) }
            let state = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-tls-loop-\(getpid())").path
            defer { try? FileManager.default.removeItem(atPath: state) }
            var policy = Policy.builtInDefault
            policy.tlsSessionReuse = feed.settings
            let namespace = try NetworkNamespace(optionalName: lab.gateway)
            let loop = try EnforceLoop(namespace: namespace, policy: policy, store: try BanStore(directory: state),
                                       stateDirectory: state, feeds: [feed], log: { _ in })

            let master = try #require(nginx.pid)
            _ = try client.resume(Array(repeating: "fresh", count: 20), version: "TLSv1_2", from: SessionReuseLab.botAddress, master: master)
            _ = try client.resume(["fresh"] + Array(repeating: "resume", count: 19), version: "TLSv1_2",
                                  from: SessionReuseLab.browserAddress, master: master)
            usleep(300_000)   // nginx writes a line as each request ends
            let bot = try AddressPrefix("203.0.113.0/24")
            var intervals = 0
            var banned: [Ban] = []
            while intervals < 2 && banned.isEmpty {
                let outcome = loop.runOnce()
                #expect(outcome.errors.isEmpty, "\(outcome.errors)")
                banned = outcome.promoted
                intervals += 1
            }
            #expect(banned.map(\.prefix) == [bot], "within two intervals")
            #expect(banned.first?.origin == .tls)
            let listed = try loop.book.list(now: Date())
            #expect(listed.map(\.ban.prefix) == [bot])
            #expect(Set(listed.first?.layers ?? []) == [.xdp, .nft], "in both layers")
            // Its 1h is the feed's ban_for, not the loop's 30m.
            let length = try #require(listed.first?.ban.expires).timeIntervalSince(try #require(listed.first?.ban.created))
            #expect(length >= 3600 && length <= 3960, "\(length)")
            // The bot's next connection goes nowhere; the resuming client's network still connects.
            let after = try client.resume(["fresh"], version: "TLSv1_2", from: SessionReuseLab.browserAddress, master: master)
            #expect(after.count == 1)
        }
    }
}

/// The lab for feed tests: the companion nginx (NginxCompanionTests.withCompanion), a bot address in
/// 203.0.113.0/24 beside the clients' 192.0.2.0/24, and a feed following nginx's real access log from
/// before the first connection. The enforce-loop tests can start from here.
enum SessionReuseLab {
    static let botAddress = "203.0.113.10"
    static let browserAddress = "192.0.2.77"

    static func run(minConnections: Int = 15, _ body: (LabNetwork, Nginx, CompanionClient, TLSSessionReuseFeed) throws -> Void) throws {
        try NginxCompanionTests().withCompanion { lab, nginx, client in
            try lab.addClientAddresses([botAddress], prefix: 24)
            try lab.inGateway(["ip", "route", "add", "203.0.113.0/24", "dev", lab.gatewayInterface])
            var settings = TLSSessionReuseSettings(log: nginx.path("gatewarden.log"))
            settings.minConnections = minConnections
            let feed = TLSSessionReuseFeed(settings: settings)
            _ = feed.poll(now: Date())
            try body(lab, nginx, client, feed)
        }
    }

    /// Polls `feed` until it has judged `connections` connections (nginx writes a line when a request
    /// ends, a moment after the client has its response), at most 5 seconds; returns every prefix flagged.
    static func poll(_ feed: TLSSessionReuseFeed, untilConnections connections: UInt64) -> [AddressPrefix] {
        var flagged: [AddressPrefix] = []
        let deadline = Date().addingTimeInterval(5)
        repeat {
            flagged += feed.poll(now: Date())
            if feed.statistics.connectionsJudged >= connections { break }
            usleep(50_000)
        } while Date() < deadline
        return flagged
    }
}
