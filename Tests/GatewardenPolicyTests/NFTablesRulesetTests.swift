import GatewardenKernel
import Testing
@testable import GatewardenPolicy
import GatewardenCore

@Suite("nftables ruleset rendering")
struct NFTablesRulesetTests {
    @Test("every rule carries a unique comment, its stable identity")
    func commentsAreUnique() {
        var policy = Policy.builtInDefault
        policy.ctMarkDrop = 7
        let ruleset = NFTablesRuleset(policy: policy, conntrackMax: 1000)
        let rules = ruleset.handshakeRules + ruleset.rules + ruleset.outputRules
        let comments = rules.compactMap { rule in rule.range(of: "comment \"").map { String(rule[$0.upperBound...].dropLast()) } }
        #expect(comments.count == rules.count)
        #expect(Set(comments).count == comments.count)
        #expect(comments[ruleset.handshakeRules.count] == "ct-mark-drop")
    }

    private static func comments(_ rules: [String]) -> [String] {
        rules.map { rule in String(rule[rule.range(of: "comment \"")!.upperBound...].dropLast()) }
    }

    @Test("order: allowlist, bans before conntrack, SYNs untracked; then synproxy, escalation before any limit can hide new connections, the limits")
    func order() throws {
        let raw = Self.comments(NFTablesRuleset(policy: .builtInDefault).handshakeRules)
        #expect(raw == ["allowlist-tracked-v4", "allowlist-tracked-v6", "policy-blocklist-v4", "blocklist-v4", "escalated-v4",
                        "policy-blocklist-v6", "blocklist-v6", "escalated-v6", "syn-to-protected-ports"])
        var policy = Policy.builtInDefault
        policy.xdpEnabled = false
        let comments = Self.comments(NFTablesRuleset(policy: policy, conntrackMax: 1000).rules)
        let position = { (id: String) in try #require(comments.firstIndex(of: id)) }
        #expect(try position("synproxy-v4") < position("allowlist-v4"), "a flood's SYN costs no other rule")
        #expect(try position("allowlist-v4") < position("synproxy-ack-v4"), "an allowlisted connection conntrack never saw keeps working")
        #expect(try position("synproxy-ack-v4") < position("escalate-subnet-v4"))
        #expect(try position("escalate-subnet-v4") < position("rate-source-v4"))
        #expect(try position("rate-source-v4") < position("new-connections-v4"))
        #expect(try position("concurrent-connections-v4") < position("conntrack-cap"))
    }

    @Test("packet rates are XDP's: nftables meters them only with the XDP layer off, and never limits established traffic otherwise")
    func packetRatesBelongToXDP() {
        let withXDP = NFTablesRuleset(policy: .builtInDefault, conntrackMax: 1000)
        #expect(!withXDP.rules.contains { $0.contains("rate-source") || $0.contains("rate-subnet") })
        let limiting = withXDP.rules.filter { $0.contains("limit rate") || $0.contains("ct count") }
        #expect(!limiting.isEmpty)
        #expect(limiting.allSatisfy { $0.contains("ct state new") }, "every limit judges completed handshakes only")
    }

    @Test("SYNs to this host's protected ports are left untracked for synproxy; allowlisted sources keep ordinary tracking")
    func synproxy() {
        let ruleset = NFTablesRuleset(policy: .builtInDefault, conntrackMax: 1000, handshake: HandshakeOptions(
            mtu: 9000, tcpRmemMax: 33_554_432, rmemMax: 212_992, timestamps: false, selectiveAcknowledgements: true))
        #expect(ruleset.handshakeRules.last == "tcp dport { 80, 443 } tcp flags & (fin | syn | rst | ack) == syn ct state invalid "
            + "fib daddr type local counter notrack comment \"syn-to-protected-ports\"", "only SYNs to this host's protected ports")
        #expect(ruleset.handshakeRules.contains("ip saddr @block_v4 fib daddr type local counter drop comment \"blocklist-v4\""))
        #expect(ruleset.rules.first == "meta nfproto ipv4 tcp dport { 80, 443 } tcp flags & (fin | syn | rst | ack) == syn "
            + "ct state untracked counter synproxy mss 8960 wscale 10 sack-perm comment \"synproxy-v4\"")
        #expect(ruleset.rules.contains("meta nfproto ipv4 tcp dport { 80, 443 } ct state invalid counter "
            + "synproxy mss 8960 wscale 10 sack-perm comment \"synproxy-ack-v4\""))
        #expect(ruleset.rules.contains { $0.hasPrefix("meta nfproto ipv6") && $0.contains("synproxy mss 8940 wscale 10 sack-perm") })
        #expect(ruleset.text.contains("chain prerouting {\n\t\ttype filter hook prerouting priority raw; policy accept;"))
    }

    @Test("the rule identities a repair compares the live table with: every chain's, observe mode's fewer")
    func ruleIdentities() {
        let enforcing = NFTablesRuleset(policy: .builtInDefault).ruleIdentities
        for rule in ["syn-to-protected-ports", "synproxy-v4", "synproxy-ack-v6", "synproxy-cookie", "synproxy-server-ack-v4",
                     "new-connections-v4", "blocklist-v6"] {
            #expect(enforcing.contains(rule), "\(rule)")
        }
        var observing = Policy.builtInDefault
        observing.mode = .observe
        let observed = NFTablesRuleset(policy: observing).ruleIdentities
        #expect(!observed.contains("synproxy-ack-v4") && observed.contains("new-connections-v4"))
    }

    @Test("what synproxy sends (its cookie, the ACK that completes the server's handshake) is left untracked; the cookie rule takes SYNs only")
    func synproxyOutput() throws {
        let ruleset = NFTablesRuleset(policy: .builtInDefault, conntrackMax: 1000)
        // The cookie: a SYN-ACK with window 0, which no socket sends. A reconnection from the same port
        // would otherwise find the last connection's entry (TIME_WAIT) and get its cookie rewritten.
        // The server's ACK: locally sent, from an address not this host's, to this host: only synproxy sends that.
        #expect(ruleset.outputRules == [
            "tcp sport { 80, 443 } tcp flags & (fin | syn | rst | ack) == syn | ack tcp window 0 fib saddr type local "
                + "counter notrack comment \"synproxy-cookie\"",
            "tcp dport { 80, 443 } tcp flags == ack ip length { 40, 52 } tcp doff { 5, 8 } fib saddr type != local "
                + "fib daddr type local counter notrack comment \"synproxy-server-ack-v4\"",
            "tcp dport { 80, 443 } tcp flags == ack ip6 length { 20, 32 } tcp doff { 5, 8 } fib saddr type != local "
                + "fib daddr type local counter notrack comment \"synproxy-server-ack-v6\""])
        #expect(ruleset.text.contains("chain output {\n\t\ttype filter hook output priority raw; policy accept;\n\t\t"
            + ruleset.outputRules.joined(separator: "\n\t\t") + "\n\t}"), "raw priority: before conntrack looks them up")
        // That ACK arrives untracked over loopback: the cookie rule must let it through to the server
        // (a cookie check of it would fail and drop it), and only SYNs were untracked before it.
        let cookies = ruleset.rules.filter { $0.contains("ct state untracked") }
        #expect(cookies.count == 2)
        #expect(cookies.allSatisfy { $0.contains("tcp flags & (fin | syn | rst | ack) == syn ct state untracked counter synproxy") })
        let lines = ruleset.applyTransaction.split(separator: "\n").map(String.init)
        let flush = try #require(lines.firstIndex(of: "flush chain inet gatewarden output"))
        #expect(lines.contains("add chain inet gatewarden output { type filter hook output priority raw; policy accept; }"))
        #expect(try ruleset.outputRules.allSatisfy { try #require(lines.firstIndex(of: "add rule inet gatewarden output " + $0)) > flush })

        var observing = Policy.builtInDefault
        observing.mode = .observe
        let observed = NFTablesRuleset(policy: observing, conntrackMax: 1000)
        #expect(observed.outputRules.isEmpty, "no synproxy, no ACK of its own")
        #expect(observed.applyTransaction.contains("flush chain inet gatewarden output"),
                "the chain stays, emptied: a switch to observe mode removes the rule an enforcing load put there")
    }

    @Test("the window scale synproxy promises is the one the kernel's own SYN-ACKs carry", arguments: [
        (6_291_456, 212_992, 7), (33_554_432, 4_194_304, 10), (65_535, 65_535, 0), (1 << 40, 1, 14), (4096, 8_388_608, 8),
    ])
    func windowScale(tcpRmemMax: Int, rmemMax: Int, expected: Int) {
        let options = HandshakeOptions(mtu: 1500, tcpRmemMax: tcpRmemMax, rmemMax: rmemMax, timestamps: true, selectiveAcknowledgements: true)
        #expect(options.windowScale == expected)
        #expect(options.ipv4MSS == 1460 && options.ipv6MSS == 1440)
    }

    @Test("a server that does not scale windows gets no window scale promised")
    func noWindowScaling() {
        let options = HandshakeOptions(mtu: 1500, tcpRmemMax: 6_291_456, rmemMax: 212_992, windowScaling: false,
                                       timestamps: true, selectiveAcknowledgements: false)
        #expect(options.windowScale == nil)
        #expect(options.statement(ipv6: false) == "synproxy mss 1460 timestamp")
    }

    @Test("observe mode: limits count and decide nothing, escalation bans nothing, bans still drop")
    func observe() {
        var policy = Policy.builtInDefault
        policy.mode = .observe
        policy.xdpEnabled = false
        policy.logPrefix = "gw: "
        let observing = NFTablesRuleset(policy: policy, conntrackMax: 1000)
        let rules = observing.handshakeRules + observing.rules + observing.outputRules
        let enforced = NFTablesRuleset(policy: .builtInDefault, conntrackMax: 1000)
        #expect(Self.comments(rules).filter { !$0.hasPrefix("rate-") }
                    == Self.comments(enforced.handshakeRules + enforced.rules + enforced.outputRules).filter { !$0.hasPrefix("synproxy-") },
                "rule ids are kept")
        let limits = ["escalate-subnet", "rate-", "auth-subnet", "new-connections", "concurrent-connections", "conntrack-cap"]
        for rule in rules where limits.contains(where: { Self.comments([rule])[0].hasPrefix($0) }) {
            #expect(!rule.contains(" drop") && !rule.contains("reject") && !rule.contains("add @blocked_subnets"), "\(rule)")
            #expect(rule.contains("counter log prefix \"gw: \" comment"), "\(rule)")
        }
        #expect(rules.contains { $0.contains("@block_v4 fib daddr type local counter log prefix \"gw: \" drop comment \"blocklist-v4\"") })
        #expect(rules.contains { $0.contains("@blocked_subnets_v4 fib daddr type local counter log prefix \"gw: \" drop comment \"escalated-v4\"") })
        #expect(!rules.contains { $0.contains("synproxy") || $0.contains("notrack") }, "observe mode leaves SYNs to conntrack")
        #expect(rules.contains { $0.hasSuffix("comment \"syn-to-protected-ports\"") }, "but counts them")
    }

    @Test("the seed limits, the subnet masks and the conntrack cap at 80% of nf_conntrack_max")
    func defaults() {
        var withoutXDP = Policy.builtInDefault
        withoutXDP.xdpEnabled = false
        let meters = NFTablesRuleset(policy: withoutXDP, conntrackMax: 262144).text
        #expect(meters.contains("update @rate_source_v4 { ip saddr limit rate over 1000/second burst 2000 packets }"))
        #expect(meters.contains("update @rate_subnet_v4 { ip saddr & 255.255.255.0 limit rate over 500/second burst 1000 packets }"))
        #expect(meters.contains("update @rate_subnet_v6 { ip6 saddr & ffff:ffff:ffff:ffff:: limit rate over 500/second"))
        let text = NFTablesRuleset(policy: .builtInDefault, conntrackMax: 262144).text
        #expect(text.contains("tcp dport { 80, 443 } tcp flags & (syn | ack) == syn ct state new ct label ! 127 "
            + "update @new_connections_v4 { ip saddr limit rate over 20/second burst 40 packets } counter reject with tcp reset"))
        #expect(text.contains("tcp dport { 80, 443, 8443 } tcp flags & (syn | ack) == syn ct state new ct label ! 127 ct label set 127 "
            + "comment \"connection-judged\""), "a connection is judged once")
        #expect(text.contains("add @connections_v4 { ip saddr ct count over 20 } counter reject with tcp reset"))
        #expect(text.contains("tcp dport { 8443 } tcp flags & (syn | ack) == syn ct state new ct label ! 127 update @auth_subnet_v4 { ip saddr & 255.255.255.0 limit rate over 20/minute burst 5 packets }"))
        #expect(text.contains("add @blocked_subnets_v4 { ip saddr & 255.255.255.0 timeout 30m }"))
        // 209,715 = 819 shares of 257 (at most 256 rounded up): a new connection walks one share's list, not the cap's.
        #expect(text.contains("ct label ! 127 add @conntrack_cap { numgen random mod 819 ct count over 257 } counter reject with tcp reset comment \"conntrack-cap\""))
        #expect(text.contains("set conntrack_cap { type mark; flags dynamic; size 65536; comment \"ct count over 257\"; }"))
        #expect(!text.contains("ct count over 209715"), "a count over the whole table costs more as it fills")
        #expect(text.contains("set block_v4 { type ipv4_addr; flags interval, timeout; timeout 1h; size 65536; }"))
        #expect(text.contains("set policy_block_v4 { type ipv4_addr; flags interval; }"), "the policy's bans have no timeout")
    }

    @Test("no conntrack cap rule while nf_conntrack_max is unknown, or when the cap is off")
    func conntrackCap() {
        #expect(!NFTablesRuleset(policy: .builtInDefault).text.contains("conntrack-cap"))
        var policy = Policy.builtInDefault
        policy.conntrackCapPercent = nil
        #expect(!NFTablesRuleset(policy: policy, conntrackMax: 1000).text.contains("conntrack-cap"))
    }

    @Test("the apply transaction keeps manual ban sets, recreates rate sets and the policy's bans, and flushes the chain before refilling it")
    func transaction() throws {
        var policy = Policy.builtInDefault
        policy.blocklist = [try AddressPrefix("198.51.100.0/24")]
        policy.logPrefix = "gatewarden: "
        policy.xdpEnabled = false
        let lines = NFTablesRuleset(policy: policy, conntrackMax: 1000).applyTransaction.split(separator: "\n").map(String.init)
        #expect(lines.prefix(5) == ["add table inet gatewarden",
                                    "add chain inet gatewarden prerouting { type filter hook prerouting priority raw; policy accept; }",
                                    "flush chain inet gatewarden prerouting",
                                    "add chain inet gatewarden input { type filter hook input priority filter - 10; policy accept; }",
                                    "flush chain inet gatewarden input"])
        #expect(!lines.contains { $0.hasPrefix("delete set inet gatewarden block_v4") }, "manual bans are kept")
        #expect(lines.contains("delete set inet gatewarden rate_source_v4"))
        // The policy's bans are exactly the policy's: their set is recreated and refilled, without timeouts.
        let recreated = lines.firstIndex(of: "delete set inet gatewarden policy_block_v4")
        let refilled = lines.firstIndex(of: "add element inet gatewarden policy_block_v4 { 198.51.100.0/24 }")
        #expect(recreated != nil && refilled != nil && recreated! < refilled!)
        #expect(!lines.contains { $0.hasPrefix("add element inet gatewarden block_v4") }, "a load adds nothing to the manual bans")
        #expect(lines.contains { $0.contains("log prefix \"gatewarden: \" drop comment \"rate-source-v4\"") })
        let flush = lines.firstIndex(of: "flush chain inet gatewarden input")!
        #expect(lines.firstIndex { $0.hasPrefix("add rule") }! > flush)
    }

    @Test("a state set is kept while its statement, timeout and size are unchanged, and recreated when one changes")
    func stateSetsKeptWhileUnchanged() throws {
        let ruleset = NFTablesRuleset(policy: .builtInDefault, conntrackMax: 1000)
        let installed = Dictionary(uniqueKeysWithValues: ruleset.stateSets.filter { !$0.name.hasSuffix("_v6") }.map { ($0.name, $0.shape) })
        let lines = ruleset.applyTransaction(installed: installed).split(separator: "\n").map(String.init)
        #expect(!lines.contains("delete set inet gatewarden connections_v4"), "an unchanged connection count is kept")
        #expect(!lines.contains("delete set inet gatewarden new_connections_v4"))
        #expect(lines.contains("delete set inet gatewarden new_connections_v6"), "not installed: made anew")

        var changed = Policy.builtInDefault
        changed.concurrentConnectionsPerSource = 30
        let relines = NFTablesRuleset(policy: changed, conntrackMax: 1000).applyTransaction(installed: installed)
            .split(separator: "\n").map(String.init)
        #expect(relines.contains("delete set inet gatewarden connections_v4"), "elements carry the old limit: recreated")
        #expect(!relines.contains("delete set inet gatewarden new_connections_v4"))
        #expect(!relines.contains("delete set inet gatewarden conntrack_cap"), "the cap's counts are kept while it is unchanged")

        var widened = Policy.builtInDefault
        widened.ipv4SubnetPrefix = 16
        let widenedLines = NFTablesRuleset(policy: widened, conntrackMax: 1000).applyTransaction(installed: installed)
            .split(separator: "\n").map(String.init)
        #expect(widenedLines.contains("delete set inet gatewarden escalation_v4"), "a /24's state is not a /16's")
        #expect(!widenedLines.contains("delete set inet gatewarden new_connections_v4"), "per-source state stays")
    }

    @Test("the conntrack cap's shares hold the cap, each small enough to walk, however large the cap", arguments: [
        (100, 1, 100), (1000, 3, 334), (2621, 10, 263), (209_715, 819, 257), (10_000_000, 4096, 2442),
    ])
    func conntrackCapShares(conntrackMax: Int, shards: Int, share: Int) {
        var policy = Policy.builtInDefault
        policy.conntrackCapPercent = 100
        let ruleset = NFTablesRuleset(policy: policy, conntrackMax: conntrackMax)
        #expect(ruleset.conntrackCapShards == shards)
        #expect(ruleset.conntrackCapShare == share)
        #expect(shards * share >= conntrackMax && shards * (share - 1) < conntrackMax, "the shares add up to the cap")
    }

    @Test("a meter keeps an idle key until its bucket has refilled, from a minute to an hour")
    func meterTimeouts() {
        #expect(NFTablesRuleset.meterTimeout(Rate(20, per: .second, burst: 40)).seconds == 60)
        #expect(NFTablesRuleset.meterTimeout(Rate(10, per: .hour, burst: 10)).seconds == 3600)
        #expect(NFTablesRuleset.meterTimeout(Rate(20, per: .minute, burst: 5)).seconds == 60)
        #expect(NFTablesRuleset.meterTimeout(Rate(1, per: .hour, burst: 100)).seconds == 3600, "at most an hour: a longer one fills the set")
        #expect(NFTablesRuleset.meterTimeout(Rate(1, per: .hour, burst: .max)).seconds == 3600)
        #expect(NFTablesRuleset.meterTimeout(nil).seconds == 60)
        let text = NFTablesRuleset(policy: .builtInDefault).text
        #expect(text.contains("set auth_subnet_v4 { type ipv4_addr; flags dynamic, timeout; timeout 1m; size 65536; "
            + "comment \"ip saddr & 255.255.255.0 limit rate over 20/minute burst 5 packets\"; }"))
    }

    @Test("the XDP share of the policy", arguments: [true, false])
    func xdpLimits(enabled: Bool) {
        var policy = Policy.builtInDefault
        policy.xdpEnabled = enabled
        policy.perSubnet = Rate(30, per: .minute, burst: 10)
        let limits = policy.xdpLimits
        #expect(limits.source == (enabled ? .init(packetsPerSecond: 1000, burst: 2000) : .init(packetsPerSecond: 0, burst: 0)))
        #expect(!limits.observe)
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
