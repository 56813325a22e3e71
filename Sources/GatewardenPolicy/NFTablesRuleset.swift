import Foundation
import GatewardenKernel
import GatewardenCore
import GatewardenDataPlane

/// The nftables ruleset a policy renders to: one table, `inet gatewarden`, so Gatewarden's rules
/// never mix with the host's own and can be replaced or removed as a whole.
///
/// Every rule carries a comment that is its stable identity: the exporter labels the rule's
/// counters with it, and dashboards and alerts key on it.
///
/// SYN floods never reach conntrack. Chain `prerouting` (raw priority, before conntrack) leaves SYNs
/// to this host's protected ports untracked; chain `input` answers them with `synproxy`, a SYN cookie,
/// and only a client that completes the handshake gets a conntrack entry (the SYN synproxy then sends
/// the server on its behalf, `ct state new`). Every connection limit judges those completed
/// handshakes, once each, so a spoofed source can neither fill conntrack nor spend a real source's
/// budget.
///
/// Chain `prerouting` (raw priority): allowlisted sources pass, bans (the policy's, manual and
/// escalated) drop before conntrack sees them, SYNs to the protected ports are counted and left untracked.
///
/// Chain `output` (raw priority): what synproxy itself sends, its cookie and the ACK that completes
/// the server's handshake, is left untracked, so no conntrack entry rewrites it (see `outputRules`).
///
/// Order in `input` matters, and is the point of the design:
///   1. ct mark drop (optional); synproxy for untracked SYNs, before anything a flood's SYN need not pay;
///   2. allowlist accept, then synproxy for the ACK that returns a cookie;
///   3. escalation watches every completed handshake before any limit can hide it (a subnet over
///      the escalation rate is banned for `block_for`);
///   4. packet rates per source and per subnet, only with the XDP layer off (XDP holds them
///      otherwise, and nftables never limits established traffic);
///   5. per-subnet new-connection limit on the auth ports, new connections per source, concurrent
///      connections per source and the conntrack cap, each answering with a TCP reset; then the
///      connection is marked judged.
///
/// In observe mode (`Policy.mode`) the same rules count what they would have done and decide
/// nothing: no drop, no reset, no escalation ban. Bans already in force still drop. SYNs are left
/// to conntrack, as without Gatewarden: synproxy comes with enforcing.
///
///     let ruleset = NFTablesRuleset(policy: .builtInDefault, conntrackMax: 262144)
///     let installed = try nft.setShapes(family: NFTablesRuleset.family, table: NFTablesRuleset.tableName)
///     try nft.run(ruleset.applyTransaction(installed: installed))   // atomic; keeps bans and unchanged state
public struct NFTablesRuleset: Sendable, Equatable {
    public static let family = GatewardenTable.family
    public static let tableName = GatewardenTable.name
    public static let chainName = "input"
    /// The raw-priority chain that keeps SYNs to the protected ports out of conntrack.
    public static let handshakeChainName = "prerouting"
    /// The raw-priority chain that keeps the packets synproxy sends out of conntrack.
    public static let outputChainName = "output"

    /// Stable rule identities (the rules' comments) that other code refers to.
    public enum RuleID {
        public static let synToProtectedPorts = "syn-to-protected-ports"
        public static let synproxyCookie = "synproxy-cookie"
        public static let synproxyServerACK = "synproxy-server-ack"
    }

    /// Sets kept across re-applies (never recreated): the bans, and the allowlists (refilled).
    public static let keptSets = ["allow_v4", "allow_v6", "block_v4", "block_v6", "blocked_subnets_v4", "blocked_subnets_v6"]

    public let policy: Policy
    /// nf_conntrack_max where the ruleset is applied; the cap rule needs it (nil: no cap rule).
    public let conntrackMax: Int?
    /// What synproxy answers SYNs with (the interface's MTU and the server's TCP settings).
    public let handshake: HandshakeOptions

    public init(policy: Policy, conntrackMax: Int? = nil, handshake: HandshakeOptions = .linuxDefault) {
        self.policy = policy
        self.conntrackMax = conntrackMax
        self.handshake = handshake
    }

    /// The conntrack cap counts the completed connections to the protected ports, spread at random
    /// over this many nf_conncount lists, each refusing past its share of the cap. One list for the
    /// whole cap (`ct count over N` without a key) is walked in full once a jiffy while connections
    /// keep coming, a cost that grows with what it holds; a share holds about `conntrackCapShareTarget`
    /// connections whatever the table holds, so a new connection costs at most one walk of that many.
    /// The shares together hold the cap: the first refusals come as the busiest share fills (around
    /// four fifths of the cap with shares of 256), and every new connection is refused once all are
    /// full. Only connections that completed a handshake count: a spoofed flood of any kind that fills
    /// conntrack never makes the cap refuse a real client.
    public var conntrackCapShards: Int? {
        conntrackCap.map { min(max($0 / Self.conntrackCapShareTarget, 1), Self.conntrackCapMaximumShards) }
    }
    static let conntrackCapShareTarget = 256

    /// How long a completed handshake vouches for its source, and how many sources are vouched for at
    /// once (a full set vouches for no new source: the loop then bans fewer, never more).
    public static let verifiedFor = PolicyDuration(seconds: 600)
    static let verifiedSetSize = 262_144
    static let conntrackCapMaximumShards = 4096

    /// Connections each share of the cap holds before it refuses.
    public var conntrackCapShare: Int? {
        guard let cap = conntrackCap, let shards = conntrackCapShards else { return nil }
        return (cap + shards - 1) / shards
    }

    /// The connection count above which the cap refuses new connections.
    public var conntrackCap: Int? {
        guard let percent = policy.conntrackCapPercent, let conntrackMax else { return nil }
        // A cap of 0 (a tiny nf_conntrack_max) would refuse every connection: no cap then.
        let cap = conntrackMax * percent / 100
        return cap > 0 ? cap : nil
    }

    // MARK: Pieces

    private struct SetDefinition {
        var name: String
        var body: String
    }

    private var ipv4Mask: String { AddressPrefix.mask(ipv4Length: policy.ipv4SubnetPrefix) }
    private var ipv6Mask: String { AddressPrefix.mask(ipv6Length: policy.ipv6SubnetPrefix) }
    private static func portSet(_ ports: [UInt16]) -> String { "{ " + ports.map(String.init).joined(separator: ", ") + " }" }
    private var ports: String { Self.portSet(policy.protectedPorts) }
    private var logged: String { policy.logPrefix.map { "log prefix \"\($0)\" " } ?? "" }
    /// What a ban does: drop, in either mode.
    private var banVerdict: String { logged + "drop" }
    private var observing: Bool { policy.mode == .observe }
    /// What a limit does with a packet over it, after its counter: `verdict` when enforcing; when
    /// observing, nothing but the counter (and the log) records it.
    private func limitVerdict(_ verdict: String) -> String {
        let words = observing ? String(logged.dropLast()) : logged + verdict
        return words.isEmpty ? "" : " " + words
    }
    private static let reset = "reject with tcp reset"
    /// The conntrack label bit marking a connection the limits have judged (the highest of the 128,
    /// clear of the low bits operators name in connlabel.conf).
    static let judgedLabel = 127
    /// A new connection's SYN that no rule has judged yet.
    private static let unjudgedConnection = "tcp flags & (syn | ack) == syn ct state new ct label ! \(judgedLabel)"
    /// A SYN, with or without ECN's flags: not an ACK, not a reset, not a FIN.
    private static let synOnly = "tcp flags & (fin | syn | rst | ack) == syn"
    /// In the raw-priority chain: a packet from the network, not yet seen by conntrack.
    private static let fromNetwork = "ct state invalid"
    /// Addressed to this host, not routed through it (prerouting sees both).
    private static let toThisHost = "fib daddr type local"

    /// (family keyword, address type, subnet key expression, suffix, nfproto) for IPv4 and IPv6.
    private var families: [(ip: String, type: String, subnet: String, suffix: String, nfproto: String)] {
        [("ip", "ipv4_addr", "ip saddr & \(ipv4Mask)", "v4", "ipv4"),
         ("ip6", "ipv6_addr", "ip6 saddr & \(ipv6Mask)", "v6", "ipv6")]
    }

    private var sets: [SetDefinition] {
        var sets: [SetDefinition] = []
        let size = policy.blocklistSize
        for family in families {
            sets.append(.init(name: "allow_\(family.suffix)", body: "type \(family.type); flags interval;"))
            // The policy's bans: no timeout, in force exactly while the policy lists them (recreated
            // with its entries at each apply). Manual bans live in the kept set beside it, each with
            // its own timeout; `blocklist.timeout` is the default for one added there without any.
            sets.append(.init(name: "policy_block_\(family.suffix)", body: "type \(family.type); flags interval;"))
            sets.append(.init(name: "block_\(family.suffix)",
                              body: "type \(family.type); flags interval, timeout; timeout \(policy.blocklistTimeout); size \(size);"))
            sets.append(.init(name: "blocked_subnets_\(family.suffix)",
                              body: "type \(family.type); flags dynamic, timeout; timeout \(policy.escalationBlockFor); size \(size);"))
        }
        for set in stateSets {
            sets.append(.init(name: set.name, body: "type \(set.type); \(set.shape.body)"))
        }
        return sets
    }

    /// The sets that hold per-key state for a rule: rate meters and connection counts.
    ///
    /// Each element carries its own copy of the rule's statement (its rate, or its connection
    /// limit), made when the element is created; a changed rule does not reach elements made
    /// before. So a state set is kept across applies exactly while the statement its elements
    /// carry, its timeout and its size are unchanged (its comment names the statement), and
    /// recreated otherwise: an unchanged policy re-applied keeps every source's spent budget and
    /// open-connection count.
    public var stateSets: [(name: String, type: String, shape: NFTablesSetShape)] {
        var sets = families.flatMap { family in
            // The comment names the key too: a changed subnet prefix must not hand a /16 a /24's state.
            let source = "\(family.ip) saddr", subnet = family.subnet
            func meter(_ name: String, _ key: String, _ rate: Rate?) -> (String, NFTablesSetShape) {
                (name, NFTablesSetShape(comment: rate.map { "\(key) \(Self.limit($0))" } ?? "unused",
                                        timeoutSeconds: Self.meterTimeout(rate).seconds, size: Self.stateSetSize))
            }
            let perFamily = [
                meter("escalation", subnet, policy.escalationPerSubnet),
                meter("escalation_probation_meter", subnet, policy.escalationPerSubnet.map(Self.probationRate)),
                ("escalation_probation", NFTablesSetShape(comment: "\(subnet) on probation after an escalation ban",
                                                          timeoutSeconds: probationLength.seconds, size: Self.stateSetSize)),
                meter("rate_source", source, policy.perSource),
                meter("rate_subnet", subnet, policy.perSubnet),
                meter("auth_subnet", subnet, policy.authPerSubnet),
                meter("new_connections", source, policy.newConnectionsPerSource),
                ("connections", NFTablesSetShape(comment: policy.concurrentConnectionsPerSource.map { "\(source) \(Self.connectionCount($0))" } ?? "unused",
                                                 timeoutSeconds: nil, size: Self.stateSetSize)),
                ("verified", NFTablesSetShape(comment: "\(source) completed a handshake (the enforce loop bans no other source)",
                                              timeoutSeconds: Self.verifiedFor.seconds, size: Self.verifiedSetSize)),
            ]
            return perFamily.map { (name: "\($0.0)_\(family.suffix)", type: family.type, shape: $0.1) }
        }
        if let shards = conntrackCapShards, let share = conntrackCapShare {
            // Keyed by a share's number, for both families; it never holds more than `shards` keys,
            // so it never looks full to the set-capacity alert.
            sets.append((name: Self.conntrackCapSet, type: "mark",
                         shape: NFTablesSetShape(comment: Self.connectionCount(share), timeoutSeconds: nil,
                                                 size: max(Self.stateSetSize, shards * 2))))
        }
        return sets
    }

    static let conntrackCapSet = "conntrack_cap"

    /// How long a subnet stays on probation after an escalation ban begins: the ban, then as long again.
    private var probationLength: PolicyDuration {
        PolicyDuration(seconds: min(policy.escalationBlockFor.seconds * 2, PolicyDuration.maximum.seconds))
    }

    /// The escalation rate without its burst (the least burst the rate allows): what a subnet on
    /// probation gets.
    static func probationRate(_ escalation: Rate) -> Rate {
        Rate(escalation.count, per: escalation.unit, burst: escalation.packetsPerSecondCeiling)
    }

    /// The statement a connection-count set's elements carry.
    private static func connectionCount(_ limit: Int) -> String { "ct count over \(limit)" }

    static let stateSetSize = 65536

    /// How long a meter keeps an idle key: until its bucket has refilled, between a minute and an
    /// hour. An element that timed out comes back with a full burst, so a shorter timeout would hand
    /// an idle source a fresh burst early (10/hour burst 10 refills in an hour: its key must live an
    /// hour). Longer would fill the set: a meter holds 65,536 keys, and a full one limits no new key.
    static func meterTimeout(_ rate: Rate?) -> PolicyDuration {
        let minimum: UInt64 = 60, maximum: UInt64 = 3600
        guard let rate, rate.count > 0 else { return PolicyDuration(seconds: minimum) }
        let (span, overflow) = rate.burst.multipliedReportingOverflow(by: rate.unit.seconds)
        guard !overflow else { return PolicyDuration(seconds: maximum) }
        let refill = (span + rate.count - 1) / rate.count
        return PolicyDuration(seconds: min(max(minimum, refill), maximum))
    }

    private static func limit(_ rate: Rate) -> String {
        "limit rate over \(rate.nftables) burst \(rate.burst) packets"
    }

    /// The rules of chain `prerouting`, in order, before conntrack looks a packet up: allowlisted
    /// sources pass with ordinary conntrack (they are never limited, so they need no SYN cookie);
    /// bans drop (a banned packet costs no conntrack lookup, and a banned SYN gets no cookie);
    /// every other SYN to a protected port is counted and left untracked for synproxy.
    public var handshakeRules: [String] {
        var rules: [String] = []
        for family in families {
            rules.append("\(family.ip) saddr @allow_\(family.suffix) accept comment \"allowlist-tracked-\(family.suffix)\"")
        }
        // Bans and synproxy are for this host's own services: traffic it routes elsewhere is left alone.
        for family in families {
            rules.append("\(family.ip) saddr @policy_block_\(family.suffix) \(Self.toThisHost) counter \(banVerdict) "
                + "comment \"policy-blocklist-\(family.suffix)\"")
            rules.append("\(family.ip) saddr @block_\(family.suffix) \(Self.toThisHost) counter \(banVerdict) comment \"blocklist-\(family.suffix)\"")
            rules.append("\(family.subnet) @blocked_subnets_\(family.suffix) \(Self.toThisHost) counter \(banVerdict) "
                + "comment \"escalated-\(family.suffix)\"")
        }
        // At raw priority conntrack has not looked a packet from the network up yet: its state reads
        // `invalid`. The SYN synproxy sends the server, and a local client's SYN, come in over
        // loopback already tracked (`new`): they are neither counted nor left untracked. Observe mode
        // leaves SYNs to conntrack, as without Gatewarden: synproxy comes with enforcing.
        rules.append("tcp dport \(ports) \(Self.synOnly) \(Self.fromNetwork) \(Self.toThisHost) counter"
            + (observing ? "" : " notrack") + " comment \"\(RuleID.synToProtectedPorts)\"")
        return rules
    }

    /// The rules of chain `output` (raw priority, before conntrack looks up a packet this host sends):
    /// the two kinds of packet synproxy sends in its own name are left untracked, as the SYNs are.
    /// Tracked, each can fall into a conntrack entry whose offsets then rewrite it on its way out:
    /// synproxy's hook (nf_synproxy_core.c, `ipv4_synproxy_hook`, and its IPv6 twin) shifts the
    /// timestamps of every packet of a synproxied connection by the offset between the server's clock
    /// and the cookie's (`synproxy_tstamp_adjust()`), and conntrack shifts its sequence numbers
    /// (seqadj).
    ///
    /// `synproxy-cookie`, the SYN-ACK carrying the cookie (window 0: no SYN-ACK of a socket has one).
    /// synproxy sends it without the SYN's untracked mark, so conntrack looks it up. A client that
    /// reconnects from the same port while the last connection's entry is in TIME_WAIT (120 s; the
    /// server closes first under `Connection: close`) gets its cookie shifted by that connection's
    /// offsets: its ACK returns a cookie that fails the check, and it never connects (100% of such
    /// reconnections here). Untracked, it also costs a spoofed flood's SYN no conntrack lookup.
    ///
    /// `synproxy-server-ack-v4/-v6`, the ACK that completes the server's handshake once the server's SYN-ACK
    /// has come (state SYN_RECV): synproxy stores the timestamp offset, then sends the ACK echoing the
    /// server's timestamp as it is. Tracked, the ACK passes synproxy's hook again on its way out, the
    /// connection now established and the offset set, and its echo is shifted a second time. Since
    /// Linux 6.15 the server checks that echo against the SYN-ACKs it sent (`tcp_check_req()`,
    /// TcpExtTSEcrRejected) and answers the ACK with an ACK of its own instead of taking it. The
    /// connection then waits for the client's first data, which the server takes only if the client
    /// echoes no newer timestamp than the SYN-ACK's; when the server's clock ticked between its SYN-ACK
    /// and that answer, the client echoes the answer's, the server refuses the data too, and the
    /// connection stalls until the server resends its SYN-ACK a second later (1-3% of new connections
    /// here). Untracked, the ACK reaches the server as synproxy made it and the server's socket is
    /// established at once. Conntrack sees the connection established at the client's first packet
    /// instead (until then it stays SYN_RECV, whose timeout is 60 s). Only this ACK matches: this host
    /// sends it to itself from an address that is not its own, with exactly ACK set and no payload (a
    /// 20-byte header, or 32 with the timestamp synproxy echoes): a transparent proxy's data to a local
    /// backend, also from a foreign address, stays tracked. (`ip length . tcp doff` in one set would be
    /// exact, but libnftables 1.0.6 aborts listing such a concatenation.)
    public var outputRules: [String] {
        guard !observing else { return [] }
        return ["tcp sport \(ports) tcp flags & (fin | syn | rst | ack) == syn | ack tcp window 0 fib saddr type local "
                    + "counter notrack comment \"\(RuleID.synproxyCookie)\"",
                "tcp dport \(ports) tcp flags == ack ip length { 40, 52 } tcp doff { 5, 8 } fib saddr type != local "
                    + "\(Self.toThisHost) counter notrack comment \"\(RuleID.synproxyServerACK)-v4\"",
                "tcp dport \(ports) tcp flags == ack ip6 length { 20, 32 } tcp doff { 5, 8 } fib saddr type != local "
                    + "\(Self.toThisHost) counter notrack comment \"\(RuleID.synproxyServerACK)-v6\""]
    }

    /// The comment of every rule the table holds: what a repair compares the live table with (a chain
    /// flushed or a rule deleted leaves the table standing, with holes in it).
    public var ruleIdentities: Set<String> {
        Set((handshakeRules + rules + outputRules).compactMap { rule in
            rule.range(of: "comment \"").map { String(rule[$0.upperBound...].prefix { $0 != "\"" }) }
        })
    }

    /// The rules of chain `input`, in order.
    public var rules: [String] {
        var rules: [String] = []
        if let mark = policy.ctMarkDrop {
            rules.append("ct mark \(String(format: "0x%x", mark)) counter \(banVerdict) comment \"ct-mark-drop\"")
        }
        // SYNs (untracked: never an allowlisted source's, prerouting kept those tracked) get a cookie,
        // first thing: a flood's SYN costs no other rule here. SYNs only: the ACK synproxy sends the
        // server comes in untracked too (chain `output`), and must reach the server, not a cookie check.
        for family in families where !observing {
            rules.append("meta nfproto \(family.nfproto) tcp dport \(ports) \(Self.synOnly) ct state untracked counter "
                + "\(handshake.statement(ipv6: family.suffix == "v6")) comment \"synproxy-\(family.suffix)\"")
        }
        for family in families {
            rules.append("\(family.ip) saddr @allow_\(family.suffix) counter accept comment \"allowlist-\(family.suffix)\"")
        }
        // The ACK that returns a cookie (invalid: no entry yet) gets the connection made with the server.
        // After the allowlist: an allowlisted connection conntrack never saw keeps reaching its socket.
        for family in families where !observing {
            rules.append("meta nfproto \(family.nfproto) tcp dport \(ports) ct state invalid counter "
                + "\(handshake.statement(ipv6: family.suffix == "v6")) comment \"synproxy-ack-\(family.suffix)\"")
        }
        // A completed handshake is the SYN synproxy sends the server: `new` and a SYN, judged once.
        // Until the server answers, the client's first data is `new` too, and synproxy sends the SYN
        // again for it: the connection's label bit says it was judged already.
        let completed = "tcp dport \(ports) \(Self.unjudgedConnection)"
        // A source that completed a handshake to a protected port is a real host: with synproxy, no
        // spoofed address ever gets here. The enforce loop bans a source for its rate only if it is
        // in this set (whatever the limits below then do to the connection), so forging a victim's address can throttle it but never get it banned.
        for family in families {
            rules.append("meta nfproto \(family.nfproto) \(completed) update @verified_\(family.suffix) { \(family.ip) saddr } "
                + "comment \"verified-source-\(family.suffix)\"")
        }
        if let escalation = policy.escalationPerSubnet {
            for family in families {
                // A ban puts the subnet on probation until `escalation.block_for` after it ends; back
                // over the rate while on probation, it is banned again at once, without the burst a
                // rested meter would give it. Completed handshakes are the evidence, never SYNs,
                // which anyone can forge in a banned subnet's name.
                let ban = observing ? "" : "add @blocked_subnets_\(family.suffix) { \(family.subnet) timeout \(policy.escalationBlockFor) } "
                    + "update @escalation_probation_\(family.suffix) { \(family.subnet) timeout \(probationLength) } "
                rules.append("\(completed) \(family.subnet) @escalation_probation_\(family.suffix) "
                    + "update @escalation_probation_meter_\(family.suffix) { \(family.subnet) \(Self.limit(Self.probationRate(escalation))) } "
                    + "\(ban)counter\(limitVerdict("drop")) comment \"escalate-on-probation-\(family.suffix)\"")
                rules.append("\(completed) update @escalation_\(family.suffix) { \(family.subnet) \(Self.limit(escalation)) } "
                    + "\(ban)counter\(limitVerdict("drop")) comment \"escalate-subnet-\(family.suffix)\"")
            }
        }
        /// A meter rule per family: `match`, then `rate` keyed by source (`bySubnet` false) or subnet.
        func meter(_ rate: Rate?, match: String, set: String, bySubnet: Bool, verdict: String, id: String) {
            guard let rate else { return }
            for family in families {
                let key = bySubnet ? family.subnet : "\(family.ip) saddr"
                rules.append("\(match) update @\(set)_\(family.suffix) { \(key) \(Self.limit(rate)) } "
                    + "counter\(limitVerdict(verdict)) comment \"\(id)-\(family.suffix)\"")
            }
        }
        if !policy.xdpEnabled {
            let protected = "meta l4proto { tcp, udp } th dport \(ports)"
            meter(policy.perSource, match: protected, set: "rate_source", bySubnet: false, verdict: "drop", id: "rate-source")
            meter(policy.perSubnet, match: protected, set: "rate_subnet", bySubnet: true, verdict: "drop", id: "rate-subnet")
        }
        if !policy.authPorts.isEmpty {
            meter(policy.authPerSubnet, match: "tcp dport \(Self.portSet(policy.authPorts)) \(Self.unjudgedConnection)", set: "auth_subnet",
                  bySubnet: true, verdict: Self.reset, id: "auth-subnet")
        }
        meter(policy.newConnectionsPerSource, match: completed, set: "new_connections", bySubnet: false,
              verdict: Self.reset, id: "new-connections")
        if let limit = policy.concurrentConnectionsPerSource {
            for family in families {
                rules.append("\(completed) add @connections_\(family.suffix) { \(family.ip) saddr "
                    + "\(Self.connectionCount(limit)) } counter\(limitVerdict(Self.reset)) comment \"concurrent-connections-\(family.suffix)\"")
            }
        }
        if let shards = conntrackCapShards, let share = conntrackCapShare {
            rules.append("\(completed) add @\(Self.conntrackCapSet) { numgen random mod \(shards) \(Self.connectionCount(share)) } "
                + "counter\(limitVerdict(Self.reset)) comment \"conntrack-cap\"")
        }
        let judged = Self.portSet(policy.protectedPorts + policy.authPorts.filter { !policy.protectedPorts.contains($0) })
        rules.append("tcp dport \(judged) \(Self.unjudgedConnection) ct label set \(Self.judgedLabel) comment \"connection-judged\"")
        return rules
    }

    private var chainHeader: String {
        // Before the host's own filter rules: what we drop never reaches them.
        "type filter hook input priority filter - 10; policy accept;"
    }

    private var handshakeChainHeader: String {
        // Raw priority runs before conntrack looks a packet up: an untracked SYN never creates an entry.
        "type filter hook prerouting priority raw; policy accept;"
    }

    private var outputChainHeader: String {
        // Raw priority: before conntrack looks up what this host sends.
        "type filter hook output priority raw; policy accept;"
    }

    /// The chains: (name, header, rules). Each is there in either mode (possibly empty), so an
    /// apply in the other mode flushes what the last one put in it.
    private var chains: [(name: String, header: String, rules: [String])] {
        [(Self.handshakeChainName, handshakeChainHeader, handshakeRules), (Self.chainName, chainHeader, rules),
         (Self.outputChainName, outputChainHeader, outputRules)]
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
                : set.name.hasPrefix("policy_block_") ? elements(policy.blocklist, String(set.name.suffix(2))) : []
            let listed = initial.isEmpty ? "" : " elements = { \(initial.map(\.description).joined(separator: ", ")) };"
            out += "\tset \(set.name) { \(set.body)\(listed) }\n"
        }
        for chain in chains {
            out += "\tchain \(chain.name) {\n\t\t\(chain.header)\n"
            for rule in chain.rules { out += "\t\t\(rule)\n" }
            out += "\t}\n"
        }
        out += "}\n"
        return out
    }

    /// One transaction that applies the policy whether or not the table exists, in which the table
    /// is never absent and the kept ban sets keep their elements: the chain is flushed and refilled, state
    /// sets are kept where `installed` shows them unchanged and recreated otherwise, the policy's ban
    /// sets are recreated (filled with exactly the policy's bans), the allowlists replaced.
    public var applyTransaction: String { applyTransaction(installed: [:]) }

    /// `applyTransaction` over a table whose sets are `installed` (by name, as `NFTables.setShapes` lists them).
    public func applyTransaction(installed: [String: NFTablesSetShape]) -> String {
        let table = "\(Self.family) \(Self.tableName)"
        var lines = ["add table \(table)"]
        for chain in chains {
            lines += ["add chain \(table) \(chain.name) { \(chain.header) }", "flush chain \(table) \(chain.name)"]
        }
        let unchangedStateSets = Set(stateSets.filter { installed[$0.name] == $0.shape }.map(\.name))
        for set in sets {
            if Self.keptSets.contains(set.name) || unchangedStateSets.contains(set.name) {
                lines.append("add set \(table) \(set.name) { \(set.body) }")
            } else {
                // Recreated: a changed definition applies, and the flushed chains refer to nothing now.
                lines.append("add set \(table) \(set.name) { \(set.body) }")
                lines.append("delete set \(table) \(set.name)")
                lines.append("add set \(table) \(set.name) { \(set.body) }")
            }
        }
        for family in families {
            // The allowlist is the policy's alone: replaced. So are the policy's bans (their set was
            // recreated above); manual and escalated bans stay in their kept sets.
            lines.append("flush set \(table) allow_\(family.suffix)")
            let allowed = elements(policy.allowlist, family.suffix)
            if !allowed.isEmpty {
                lines.append("add element \(table) allow_\(family.suffix) { \(allowed.map(\.description).joined(separator: ", ")) }")
            }
            let bans = elements(policy.blocklist, family.suffix)
            if !bans.isEmpty {
                lines.append("add element \(table) policy_block_\(family.suffix) { \(bans.map(\.description).joined(separator: ", ")) }")
            }
        }
        for chain in chains {
            for rule in chain.rules { lines.append("add rule \(table) \(chain.name) \(rule)") }
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
