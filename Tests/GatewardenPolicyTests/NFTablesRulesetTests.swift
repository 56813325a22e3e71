import GatewardenKernel
import Testing
@testable import GatewardenPolicy

@Suite("nftables ruleset rendering")
struct NFTablesRulesetTests {
    @Test("every rule carries a unique comment, its stable identity")
    func commentsAreUnique() {
        var policy = Policy.builtInDefault
        policy.ctMarkDrop = 7
        let rules = NFTablesRuleset(policy: policy, conntrackMax: 1000).rules
        let comments = rules.compactMap { rule in rule.range(of: "comment \"").map { String(rule[$0.upperBound...].dropLast()) } }
        #expect(comments.count == rules.count)
        #expect(Set(comments).count == comments.count)
        #expect(comments.first == "ct-mark-drop")
    }

    @Test("order: lists, then escalation before any limit can hide new connections, then the limits")
    func order() {
        let comments = NFTablesRuleset(policy: .builtInDefault, conntrackMax: 1000).rules.map { rule in
            String(rule[rule.range(of: "comment \"")!.upperBound...].dropLast())
        }
        let position = { (id: String) in comments.firstIndex(of: id)! }
        #expect(position("allowlist-v4") < position("blocklist-v4"))
        #expect(position("blocklist-v4") < position("escalate-subnet-v4"))
        #expect(position("escalate-subnet-v4") < position("rate-source-v4"))
        #expect(position("rate-source-v4") < position("new-connections-v4"))
        #expect(position("concurrent-connections-v4") < position("conntrack-cap"))
    }

    @Test("the seed limits, the subnet masks and the conntrack cap at 80% of nf_conntrack_max")
    func defaults() {
        let text = NFTablesRuleset(policy: .builtInDefault, conntrackMax: 262144).text
        #expect(text.contains("update @rate_source_v4 { ip saddr limit rate over 100/second burst 200 packets }"))
        #expect(text.contains("update @rate_subnet_v4 { ip saddr & 255.255.255.0 limit rate over 500/second burst 1000 packets }"))
        #expect(text.contains("update @rate_subnet_v6 { ip6 saddr & ffff:ffff:ffff:ffff:: limit rate over 500/second"))
        #expect(text.contains("update @new_connections_v4 { ip saddr limit rate over 20/second burst 40 packets }"))
        #expect(text.contains("add @connections_v4 { ip saddr ct count over 20 } counter reject with tcp reset"))
        #expect(text.contains("tcp dport { 8443 } ct state new update @auth_subnet_v4 { ip saddr & 255.255.255.0 limit rate over 20/minute burst 5 packets }"))
        #expect(text.contains("add @blocked_subnets_v4 { ip saddr & 255.255.255.0 timeout 30m }"))
        #expect(text.contains("ct count over 209715 counter drop comment \"conntrack-cap\""))
        #expect(text.contains("set block_v4 { type ipv4_addr; flags interval, timeout; timeout 1h; size 65536; }"))
    }

    @Test("no conntrack cap rule while nf_conntrack_max is unknown, or when the cap is off")
    func conntrackCap() {
        #expect(!NFTablesRuleset(policy: .builtInDefault).text.contains("conntrack-cap"))
        var policy = Policy.builtInDefault
        policy.conntrackCapPercent = nil
        #expect(!NFTablesRuleset(policy: policy, conntrackMax: 1000).text.contains("conntrack-cap"))
    }

    @Test("the apply transaction keeps ban sets, recreates rate sets, and flushes the chain before refilling it")
    func transaction() throws {
        var policy = Policy.builtInDefault
        policy.blocklist = [try AddressPrefix("198.51.100.0/24")]
        policy.logPrefix = "gatewarden: "
        let lines = NFTablesRuleset(policy: policy, conntrackMax: 1000).applyTransaction.split(separator: "\n").map(String.init)
        #expect(lines.prefix(3) == ["add table inet gatewarden",
                                    "add chain inet gatewarden input { type filter hook input priority filter - 10; policy accept; }",
                                    "flush chain inet gatewarden input"])
        #expect(!lines.contains { $0.hasPrefix("delete set inet gatewarden block_v4") })
        #expect(lines.contains("delete set inet gatewarden rate_source_v4"))
        #expect(lines.contains("add element inet gatewarden block_v4 { 198.51.100.0/24 }"))
        #expect(lines.contains { $0.contains("log prefix \"gatewarden: \" drop comment \"rate-source-v4\"") })
        let flush = lines.firstIndex(of: "flush chain inet gatewarden input")!
        #expect(lines.firstIndex { $0.hasPrefix("add rule") }! > flush)
    }

    @Test("the XDP share of the policy", arguments: [true, false])
    func xdpLimits(enabled: Bool) {
        var policy = Policy.builtInDefault
        policy.xdpEnabled = enabled
        policy.perSubnet = Rate(30, per: .minute, burst: 10)
        let limits = policy.xdpLimits
        #expect(limits.source == (enabled ? .init(packetsPerSecond: 100, burst: 200) : .init(packetsPerSecond: 0, burst: 0)))
        #expect(limits.subnet == (enabled ? .init(packets: 30, perSeconds: 60, burst: 10) : .init(packetsPerSecond: 0, burst: 0)))
        #expect(limits.protectedPorts == [80, 443])
    }

    @Test("masks")
    func masks() {
        #expect(AddressPrefix.mask(ipv4Length: 24) == "255.255.255.0")
        #expect(AddressPrefix.mask(ipv4Length: 20) == "255.255.240.0")
        #expect(AddressPrefix.mask(ipv6Length: 64) == "ffff:ffff:ffff:ffff::")
        #expect(AddressPrefix.mask(ipv6Length: 56) == "ffff:ffff:ffff:ff00::")
        #expect(AddressPrefix.mask(ipv6Length: 48) == "ffff:ffff:ffff::")
    }
}
