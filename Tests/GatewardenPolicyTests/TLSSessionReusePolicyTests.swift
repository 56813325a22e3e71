import Testing
@testable import GatewardenPolicy
import GatewardenCore

@Suite("The tls_session_reuse policy section")
struct TLSSessionReusePolicyTests {
    @Test("absent: the feed is off; `off`: likewise")
    func absent() throws {
        #expect(try PolicyParser.parse(yaml: "mode: enforce\n", file: "p.yaml").tlsSessionReuse == nil)
        #expect(try PolicyParser.parse(yaml: "tls_session_reuse: off\n", file: "p.yaml").tlsSessionReuse == nil)
    }

    @Test("only log given: every other key has its default")
    func defaults() throws {
        let settings = try #require(try PolicyParser.parse(yaml: "tls_session_reuse: {log: /var/log/nginx/gatewarden.log}\n",
                                                           file: "p.yaml").tlsSessionReuse)
        #expect(settings == TLSSessionReuseSettings(log: "/var/log/nginx/gatewarden.log"))
        #expect(settings.minConnections == 15 && settings.newSessionRatio == 0.95 && settings.window.seconds == 600)
        #expect(settings.ipv4Prefix == 24 && settings.ipv6Prefix == 64 && settings.banFor.seconds == 3600)
    }

    @Test("every key read")
    func everyKey() throws {
        let settings = try #require(try PolicyParser.parse(yaml: """
            tls_session_reuse:
              log: /srv/logs/gw.log
              min_connections: 40
              new_session_ratio: 90%
              window: 30m
              prefix: 22
              ipv6_prefix: 48
              ban_for: 2h
            """, file: "p.yaml").tlsSessionReuse)
        #expect(settings.log == "/srv/logs/gw.log" && settings.minConnections == 40 && settings.newSessionRatio == 0.9)
        #expect(settings.window.seconds == 1800 && settings.ipv4Prefix == 22 && settings.ipv6Prefix == 48 && settings.banFor.seconds == 7200)
        #expect(try PolicyParser.parse(yaml: "tls_session_reuse: {log: /l, new_session_ratio: 0.99}", file: "p.yaml")
            .tlsSessionReuse?.newSessionRatio == 0.99)
    }

    @Test("bad values name FILE:LINE:COL: key, and change nothing", arguments: [
        ("tls_session_reuse: {min_connections: 5}", "p.yaml:1:20: tls_session_reuse.log"),
        ("tls_session_reuse: {log: relative.log}", "p.yaml:1:26: tls_session_reuse.log"),
        ("tls_session_reuse: {log: /var/log/}", "p.yaml:1:26: tls_session_reuse.log"),
        ("tls_session_reuse: {log: [a]}", "p.yaml:1:26: tls_session_reuse.log"),
        ("tls_session_reuse: {log: /l, min_connections: 0}", "p.yaml:1:47: tls_session_reuse.min_connections"),
        ("tls_session_reuse: {log: /l, new_session_ratio: 1}", "p.yaml:1:49: tls_session_reuse.new_session_ratio"),
        ("tls_session_reuse: {log: /l, new_session_ratio: 0}", "p.yaml:1:49: tls_session_reuse.new_session_ratio"),
        ("tls_session_reuse: {log: /l, new_session_ratio: 150%}", "p.yaml:1:49: tls_session_reuse.new_session_ratio"),
        ("tls_session_reuse: {log: /l, new_session_ratio: nan}", "p.yaml:1:49: tls_session_reuse.new_session_ratio"),
        ("tls_session_reuse: {log: /l, window: 30s}", "p.yaml:1:38: tls_session_reuse.window"),
        ("tls_session_reuse: {log: /l, window: 2d}", "p.yaml:1:38: tls_session_reuse.window"),
        ("tls_session_reuse: {log: /l, window: soon}", "p.yaml:1:38: tls_session_reuse.window"),
        ("tls_session_reuse: {log: /l, prefix: 33}", "p.yaml:1:38: tls_session_reuse.prefix"),
        ("tls_session_reuse: {log: /l, ipv6_prefix: 128}", "p.yaml:1:43: tls_session_reuse.ipv6_prefix"),
        ("tls_session_reuse: {log: /l, ban_for: 0s}", "p.yaml:1:39: tls_session_reuse.ban_for"),
        ("tls_session_reuse: {log: /l, bans: 1h}", "p.yaml:1:30: tls_session_reuse.bans"),
        ("tls_session_reuse: /var/log/nginx/gatewarden.log", "p.yaml:1:20: tls_session_reuse"),
    ])
    func problems(yaml: String, location: String) {
        do {
            _ = try PolicyParser.parse(yaml: yaml, file: "p.yaml")
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect("\(error)".contains(location), "\(error)")
        }
    }
}
