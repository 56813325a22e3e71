import Testing
@testable import GatewardenEnforce

@Suite("The gw1 log line parser")
struct NginxLogLineTests {
    @Test("a TLS line: every field read")
    func tlsLine() throws {
        let line = try NginxLogLine("gw1 1796019740.602 192.0.2.10 1887 1 . TLSv1.3 200 0.004")
        #expect(line.timeMilliseconds == 1_796_019_740_602)
        #expect(line.address == ClientAddress(high: 0, low: 0xc000_020a, isIPv4: true))
        #expect(line.connection == 1887 && line.connectionRequests == 1 && line.isFirstRequest)
        #expect(line.session == .new && line.status == 200 && line.requestTimeMilliseconds == 4)
        #expect(try NginxLogLine("gw1 1796019745.734 192.0.2.10 1903 2 r TLSv1.2 429 12.000").session == .resumed)
    }

    @Test("plain HTTP: - in both TLS fields")
    func plainHTTP() throws {
        #expect(try NginxLogLine("gw1 1796019740.602 192.0.2.10 1 1 - - 200 0.000").session == .notTLS)
    }

    @Test("IPv6 addresses in nginx's forms, and an IPv4-mapped one read as IPv4")
    func ipv6() throws {
        let line = try NginxLogLine("gw1 1.000 2001:db8::ffff:0:0:1 5 1 r TLSv1.3 200 0.000")
        #expect(line.address == ClientAddress(high: 0x2001_0db8_0000_0000, low: 0xffff_0000_0000_0001, isIPv4: false), "2001:db8:0:0:ffff:0:0:1")
        let mapped = try NginxLogLine("gw1 1.000 ::ffff:198.51.100.9 5 1 r TLSv1.3 200 0.000")
        #expect(mapped.address == ClientAddress(high: 0, low: 0xc633_6409, isIPv4: true))
    }

    @Test("other formats are told apart from broken gw1 lines", arguments: [
        ("192.0.2.1 - - [01/Jan/2026:00:00:00 +0000] \"GET / HTTP/1.1\" 200 5", NginxLogLine.Rejection.otherFormat),
        ("gw2 1.000 192.0.2.1 1 1 . TLSv1.3 200 0.000", .otherFormat),
        ("", .otherFormat),
        ("gw1", .otherFormat),
        ("gw1 ", .malformed),
        ("gw1 1.000 192.0.2.1 1 1 . TLSv1.3 200", .malformed),                     // a field fewer
        ("gw1 1.000 192.0.2.1 1 1 . TLSv1.3 200 0.000 x", .malformed),             // a field more
        ("gw1 1.000 192.0.2.1 1 1 . TLSv1.3 200 0.000 ", .malformed),              // a trailing space
        ("gw1 1.000  192.0.2.1 1 1 . TLSv1.3 200 0.000", .malformed),              // two spaces
        ("gw1 1.000 192.0.2.256 1 1 . TLSv1.3 200 0.000", .malformed),
        ("gw1 1.000 192.0.2 1 1 . TLSv1.3 200 0.000", .malformed),
        ("gw1 1.000 2001:db8:::1 1 1 . TLSv1.3 200 0.000", .malformed),
        ("gw1 1.000 unix: 1 1 . TLSv1.3 200 0.000", .malformed),
        ("gw1 1.0 192.0.2.1 1 1 . TLSv1.3 200 0.000", .malformed),                 // $msec has 3 decimals
        ("gw1 -1.000 192.0.2.1 1 1 . TLSv1.3 200 0.000", .malformed),
        ("gw1 1.000 192.0.2.1 0 1 . TLSv1.3 200 0.000", .malformed),               // connections count from 1
        ("gw1 1.000 192.0.2.1 1 0 . TLSv1.3 200 0.000", .malformed),
        ("gw1 1.000 192.0.2.1 99999999999999999999 1 . TLSv1.3 200 0.000", .malformed),
        ("gw1 1.000 192.0.2.1 1 1 x TLSv1.3 200 0.000", .malformed),
        ("gw1 1.000 192.0.2.1 1 1 . - 200 0.000", .malformed),                     // TLS fields disagree
        ("gw1 1.000 192.0.2.1 1 1 - TLSv1.3 200 0.000", .malformed),
        ("gw1 1.000 192.0.2.1 1 1 . TLS\\x22 200 0.000", .malformed),
        ("gw1 1.000 192.0.2.1 1 1 . TLSv1.3 2000 0.000", .malformed),
        ("gw1 1.000 192.0.2.1 1 1 . TLSv1.3 200 0.000\r", .malformed),
        ("gw1 1.000 192.0.2.1 1 1 . TLSv1.3 200 0.000\u{0}", .malformed),
    ])
    func rejected(text: String, reason: NginxLogLine.Rejection) {
        #expect(throws: reason) { try NginxLogLine(text) }
    }

    @Test("a network key keeps the prefix's bits and nothing else")
    func networks() throws {
        let v4 = try NginxLogLine("gw1 1.000 203.0.113.77 1 1 . TLSv1.3 200 0.000").address
        #expect(v4.network(ipv4Prefix: 24, ipv6Prefix: 64).prefix.description == "203.0.113.0/24")
        #expect(v4.network(ipv4Prefix: 16, ipv6Prefix: 64).prefix.description == "203.0.0.0/16")
        #expect(v4.network(ipv4Prefix: 32, ipv6Prefix: 64).prefix.description == "203.0.113.77/32")
        let v6 = try NginxLogLine("gw1 1.000 2001:db8:1:2:3:4:5:6 1 1 . TLSv1.3 200 0.000").address
        #expect(v6.network(ipv4Prefix: 24, ipv6Prefix: 64).prefix.description == "2001:db8:1:2::/64")
        #expect(v6.network(ipv4Prefix: 24, ipv6Prefix: 48).prefix.description == "2001:db8:1::/48")
    }
}
