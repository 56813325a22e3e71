import Testing
@testable import GatewardenPolicy
import GatewardenKernel

private func ports(_ ports: [UInt16]) -> XDPLimits {
    var limits = XDPLimits.default
    limits.protectedPorts = ports
    return limits
}

@Suite("nftables ruleset rendering")
struct NFTablesRulesetTests {
    @Test("the protected ports appear in the SYN rule, which carries its stable comment")
    func rendersPorts() {
        let text = NFTablesRuleset(policy: Policy(xdp: ports([8443, 443]))).text
        #expect(text.contains("tcp dport { 8443, 443 } tcp flags & (syn | ack) == syn counter comment \"syn-to-protected-ports\""))
        #expect(text.hasPrefix("table inet gatewarden {"))
    }

    @Test("the replacement is one transaction that works whether or not the table exists")
    func replaceTransaction() {
        let lines = NFTablesRuleset(policy: .builtInDefault).replaceTransaction.split(separator: "\n")
        #expect(lines.prefix(3) == ["add table inet gatewarden", "delete table inet gatewarden", "table inet gatewarden {"])
    }

    @Test("the built-in default protects HTTP and HTTPS")
    func builtInDefault() {
        #expect(Policy.builtInDefault.protectedPorts == [80, 443])
        #expect(Policy.builtInDefault.xdp.source == .init(packetsPerSecond: 100, burst: 200))
        #expect(Policy.builtInDefault.xdp.subnet == .init(packetsPerSecond: 500, burst: 1000))
    }
}
