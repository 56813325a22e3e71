import Testing
@testable import GatewardenServe

@Suite("Text exposition format 0.0.4")
struct TextFormatTests {
    @Test("label values escape backslash, double quote and line feed, and nothing else")
    func labelEscaping() {
        #expect(TextFormat.escapeLabelValue(#"a\b"#) == #"a\\b"#)
        #expect(TextFormat.escapeLabelValue(#"say "hi""#) == #"say \"hi\""#)
        #expect(TextFormat.escapeLabelValue("line\nbreak") == #"line\nbreak"#)
        #expect(TextFormat.escapeLabelValue("tab\tand ünïcode") == "tab\tand ünïcode")
    }

    @Test("help text escapes backslash and line feed but keeps quotes")
    func helpEscaping() {
        #expect(TextFormat.escapeHelp("a \"b\" \\ c\nd") == #"a "b" \\ c\nd"#)
    }

    @Test("values: integers without a fraction, specials as the format spells them")
    func values() {
        #expect(TextFormat.formatValue(7) == "7")
        #expect(TextFormat.formatValue(0.25) == "0.25")
        #expect(TextFormat.formatValue(.nan) == "NaN")
        #expect(TextFormat.formatValue(.infinity) == "+Inf")
        #expect(TextFormat.formatValue(-.infinity) == "-Inf")
        #expect(TextFormat.formatValue(1e300) == "1e+300")
    }

    @Test("a family renders HELP, TYPE and one line per sample, labels in order")
    func family() {
        var family = MetricFamily(name: "gatewarden_xdp_packets_total", help: "Packets.", type: .counter)
        family.add(["interface": "eth0", "action": "drop", "reason": "rate_ip"], 12)
        family.add(["interface": "eth\"1", "action": "pass", "reason": "within_limit"], 3)
        #expect(TextFormat.render([family]) == """
        # HELP gatewarden_xdp_packets_total Packets.
        # TYPE gatewarden_xdp_packets_total counter
        gatewarden_xdp_packets_total{interface="eth0",action="drop",reason="rate_ip"} 12
        gatewarden_xdp_packets_total{interface="eth\\"1",action="pass",reason="within_limit"} 3

        """)
    }

    @Test("info families are written as gauges, which 0.0.4 knows")
    func infoAsGauge() {
        let family = MetricFamily(name: "gatewarden_build", help: "h", type: .info)
        #expect(TextFormat.render([family]).contains("# TYPE gatewarden_build gauge"))
    }
}
