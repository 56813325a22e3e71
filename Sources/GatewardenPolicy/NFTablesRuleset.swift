import GatewardenKernel
import Foundation

/// The nftables ruleset a policy renders to: one table, `inet gatewarden`, so Gatewarden's rules
/// never mix with the host's own and can be replaced or removed as a whole.
///
/// Every rule carries a comment that is its stable identity: the exporter labels the rule's
/// counters with it, and dashboards and alerts key on it.
///
/// Order matters, and is the point of the design:
///   1. ct mark drop (optional), allowlist accept, bans (policy/manual and escalated) drop;
///   2. escalation watches every new connection before any limit can hide it (a subnet over the
///      escalation rate is banned for `block_for`);
///   3. packet rates per source and per subnet on the protected ports;
///   4. per-subnet new-connection limit on the auth ports, new connections (SYN) per source,
///      concurrent connections per source (reset), and the conntrack cap.
///
///     let ruleset = NFTablesRuleset(policy: .builtInDefault, conntrackMax: 262144)
///     try nft.run(ruleset.applyTransaction)   // atomic; keeps the bans
public struct NFTablesRuleset: Sendable, Equatable {
    public static let family = "inet"
    public static let tableName = "gatewarden"
    public static let chainName = "input"

    /// Stable rule identities (the rules' comments) that other code refers to.
    public enum RuleID {
        public static let synToProtectedPorts = "syn-to-protected-ports"
    }

    /// Sets kept across re-applies (never recreated): the bans, and the allowlists (refilled).
    public static let keptSets = ["allow_v4", "allow_v6", "block_v4", "block_v6", "blocked_subnets_v4", "blocked_subnets_v6"]

    public let policy: Policy
    /// nf_conntrack_max where the ruleset is applied; the cap rule needs it (nil: no cap rule).
    public let conntrackMax: Int?

    public init(policy: Policy, conntrackMax: Int? = nil) {
        self.policy = policy
        self.conntrackMax = conntrackMax
    }

    /// The connection count above which the cap drops new connections.
    public var conntrackCap: Int? {
        guard let percent = policy.conntrackCapPercent, let conntrackMax else { return nil }
        return conntrackMax * percent / 100
    }

    // MARK: Pieces

    private struct SetDefinition {
        var name: String
        var body: String
    }

    private var ipv4Mask: String { AddressPrefix.mask(ipv4Length: policy.ipv4SubnetPrefix) }
    private var ipv6Mask: String { AddressPrefix.mask(ipv6Length: policy.ipv6SubnetPrefix) }
    private var ports: String { "{ " + policy.protectedPorts.map(String.init).joined(separator: ", ") + " }" }
    private var drop: String { policy.logPrefix.map { "log prefix \"\($0)\" drop" } ?? "drop" }

    /// (family keyword, address type, subnet key expression, suffix) for IPv4 and IPv6.
    private var families: [(ip: String, type: String, subnet: String, suffix: String)] {
        [("ip", "ipv4_addr", "ip saddr & \(ipv4Mask)", "v4"), ("ip6", "ipv6_addr", "ip6 saddr & \(ipv6Mask)", "v6")]
    }

    private var sets: [SetDefinition] {
        var sets: [SetDefinition] = []
        let size = policy.blocklistSize
        for family in families {
            sets.append(.init(name: "allow_\(family.suffix)", body: "type \(family.type); flags interval;"))
            sets.append(.init(name: "block_\(family.suffix)",
                              body: "type \(family.type); flags interval, timeout; timeout \(policy.blocklistTimeout); size \(size);"))
            sets.append(.init(name: "blocked_subnets_\(family.suffix)",
                              body: "type \(family.type); flags dynamic, timeout; timeout \(policy.escalationBlockFor); size \(size);"))
        }
        // Rate state: recreated at each apply (it holds nothing worth keeping).
        for family in families {
            for name in ["escalation", "rate_source", "rate_subnet", "auth_subnet", "new_connections"] {
                sets.append(.init(name: "\(name)_\(family.suffix)",
                                  body: "type \(family.type); flags dynamic, timeout; timeout 60s; size 65536;"))
            }
            sets.append(.init(name: "connections_\(family.suffix)", body: "type \(family.type); flags dynamic; size 65536;"))
        }
        return sets
    }

    private static func limit(_ rate: Rate) -> String {
        "limit rate over \(rate.nftables) burst \(rate.burst) packets"
    }

    /// The rules of chain `input`, in order.
    public var rules: [String] {
        var rules: [String] = []
        if let mark = policy.ctMarkDrop {
            rules.append("ct mark \(String(format: "0x%x", mark)) counter \(drop) comment \"ct-mark-drop\"")
        }
        for family in families {
            rules.append("\(family.ip) saddr @allow_\(family.suffix) counter accept comment \"allowlist-\(family.suffix)\"")
        }
        for family in families {
            rules.append("\(family.ip) saddr @block_\(family.suffix) counter \(drop) comment \"blocklist-\(family.suffix)\"")
            rules.append("\(family.subnet) @blocked_subnets_\(family.suffix) counter \(drop) comment \"escalated-\(family.suffix)\"")
        }
        rules.append("tcp dport \(ports) tcp flags & (syn | ack) == syn counter comment \"\(RuleID.synToProtectedPorts)\"")
        if let escalation = policy.escalationPerSubnet {
            for family in families {
                rules.append("tcp dport \(ports) ct state new update @escalation_\(family.suffix) { \(family.subnet) "
                    + "\(Self.limit(escalation)) } add @blocked_subnets_\(family.suffix) { \(family.subnet) "
                    + "timeout \(policy.escalationBlockFor) } counter \(drop) comment \"escalate-subnet-\(family.suffix)\"")
            }
        }
        /// A meter rule per family: `match`, then `rate` keyed by source (`bySubnet` false) or subnet.
        func meter(_ rate: Rate?, match: String, set: String, bySubnet: Bool, id: String) {
            guard let rate else { return }
            for family in families {
                let key = bySubnet ? family.subnet : "\(family.ip) saddr"
                rules.append("\(match) update @\(set)_\(family.suffix) { \(key) \(Self.limit(rate)) } "
                    + "counter \(drop) comment \"\(id)-\(family.suffix)\"")
            }
        }
        let protected = "meta l4proto { tcp, udp } th dport \(ports)"
        meter(policy.perSource, match: protected, set: "rate_source", bySubnet: false, id: "rate-source")
        meter(policy.perSubnet, match: protected, set: "rate_subnet", bySubnet: true, id: "rate-subnet")
        if !policy.authPorts.isEmpty {
            let authPorts = "{ " + policy.authPorts.map(String.init).joined(separator: ", ") + " }"
            meter(policy.authPerSubnet, match: "tcp dport \(authPorts) ct state new", set: "auth_subnet", bySubnet: true, id: "auth-subnet")
        }
        meter(policy.newConnectionsPerSource, match: "tcp dport \(ports) ct state new", set: "new_connections",
              bySubnet: false, id: "new-connections")
        if let limit = policy.concurrentConnectionsPerSource {
            for family in families {
                rules.append("tcp dport \(ports) ct state new add @connections_\(family.suffix) { \(family.ip) saddr "
                    + "ct count over \(limit) } counter reject with tcp reset comment \"concurrent-connections-\(family.suffix)\"")
            }
        }
        if let cap = conntrackCap {
            rules.append("tcp dport \(ports) ct state new ct count over \(cap) counter \(drop) comment \"conntrack-cap\"")
        }
        return rules
    }

    private var chainHeader: String {
        // Before the host's own filter rules: what we drop never reaches them.
        "type filter hook input priority filter - 10; policy accept;"
    }

    // MARK: Text

    private func elements(_ prefixes: [AddressPrefix], _ suffix: String) -> [AddressPrefix] {
        prefixes.filter { $0.isIPv4 == (suffix == "v4") }
    }

    /// The table as nft syntax, for `render` and `persist`.
    public var text: String {
        var out = "table \(Self.family) \(Self.tableName) {\n"
        for set in sets {
            let initial = set.name.hasPrefix("allow_") ? elements(policy.allowlist, String(set.name.suffix(2)))
                : set.name.hasPrefix("block_") ? elements(policy.blocklist, String(set.name.suffix(2))) : []
            let listed = initial.isEmpty ? "" : " elements = { \(initial.map(\.description).joined(separator: ", ")) };"
            out += "\tset \(set.name) { \(set.body)\(listed) }\n"
        }
        out += "\tchain \(Self.chainName) {\n\t\t\(chainHeader)\n"
        for rule in rules { out += "\t\t\(rule)\n" }
        out += "\t}\n}\n"
        return out
    }

    /// One transaction that applies the policy whether or not the table exists, in which the table
    /// is never absent and the ban sets keep their elements: the chain is flushed and refilled, rate
    /// state is recreated, the allowlists replaced, the policy's own bans (re)added.
    public var applyTransaction: String {
        let table = "\(Self.family) \(Self.tableName)"
        var lines = ["add table \(table)",
                     "add chain \(table) \(Self.chainName) { \(chainHeader) }",
                     "flush chain \(table) \(Self.chainName)"]
        for set in sets {
            if Self.keptSets.contains(set.name) {
                lines.append("add set \(table) \(set.name) { \(set.body) }")
            } else {
                // Recreated: a changed definition (allowlist, sizes) applies, and nothing refers to them now.
                lines.append("add set \(table) \(set.name) { \(set.body) }")
                lines.append("delete set \(table) \(set.name)")
                lines.append("add set \(table) \(set.name) { \(set.body) }")
            }
        }
        for family in families {
            // The allowlist is the policy's alone: replaced. Bans accumulate: the policy's are (re)added.
            lines.append("flush set \(table) allow_\(family.suffix)")
            let allowed = elements(policy.allowlist, family.suffix)
            if !allowed.isEmpty {
                lines.append("add element \(table) allow_\(family.suffix) { \(allowed.map(\.description).joined(separator: ", ")) }")
            }
            let bans = elements(policy.blocklist, family.suffix)
            if !bans.isEmpty {
                lines.append("add element \(table) block_\(family.suffix) { \(bans.map(\.description).joined(separator: ", ")) }")
            }
        }
        for rule in rules {
            lines.append("add rule \(table) \(Self.chainName) \(rule)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Removes the table and everything in it.
    public static var deleteCommand: String { "delete table \(family) \(tableName)" }
}

extension AddressPrefix {
    /// `255.255.255.0` for 24.
    static func mask(ipv4Length length: Int) -> String {
        let value = length == 0 ? UInt32(0) : UInt32.max << UInt32(32 - length)
        return [24, 16, 8, 0].map { String((value >> UInt32($0)) & 0xff) }.joined(separator: ".")
    }

    /// `ffff:ffff:ffff:ffff::` for 64.
    static func mask(ipv6Length length: Int) -> String {
        var groups: [String] = []
        var remaining = length
        while remaining > 0 {
            let bits = min(16, remaining)
            groups.append(String(UInt16.max << UInt16(16 - bits), radix: 16))
            remaining -= bits
        }
        return groups.joined(separator: ":") + (groups.count < 8 ? "::" : "")
    }
}
