import GatewardenKernel
import GatewardenCore
import GatewardenDataPlane

/// What Gatewarden protects and how. One policy drives both layers: the nftables ruleset
/// (`NFTablesRuleset`) and the XDP program's configuration maps (`xdpLimits`).
///
/// Read from YAML by `PolicyParser`; `Policy.builtInDefault` holds the seed articles' limits.
///
///     let policy = try PolicyParser.parse(file: "/etc/gatewarden/policy.yaml")
///     print(NFTablesRuleset(policy: policy, conntrackMax: 262144).text)
public struct Policy: Sendable, Equatable {
    /// Whether rate, connection and escalation limits act (`enforce`) or only count what they would
    /// have done (`observe`, for rollout). Bans drop in both modes.
    public var mode: EnforcementMode = .enforce
    /// Destination ports whose traffic is limited, TCP and UDP.
    public var protectedPorts: [UInt16] = [80, 443]
    /// Ports with a tighter per-subnet limit on new connections (login, token endpoints).
    public var authPorts: [UInt16] = [8443]
    /// Source subnet sizes for the per-subnet limits.
    public var ipv4SubnetPrefix = 24
    public var ipv6SubnetPrefix = 64

    /// Packets per source address to protected ports; nil: off. Enforced by XDP (by nftables instead
    /// when the XDP layer is off). The seed's XDP program's limit: a keep-alive client at 100
    /// requests/s sends a few hundred packets a second, far below it; a flood from one address does not.
    public var perSource: Rate? = Rate(1000, per: .second, burst: 2000)
    /// Packets per source subnet to protected ports; nil: off. Enforced like `perSource`.
    public var perSubnet: Rate? = Rate(500, per: .second, burst: 1000)
    /// New TCP connections (completed handshakes) per source address; over it they are reset; nil: off.
    public var newConnectionsPerSource: Rate? = Rate(20, per: .second, burst: 40)
    /// Concurrent connections per source address; beyond it new ones are reset; nil: off.
    public var concurrentConnectionsPerSource: Int? = 20
    /// New connections are reset once this share of nf_conntrack_max is in use by connections to the
    /// protected ports; nil: off.
    public var conntrackCapPercent: Int? = 80
    /// New connections per source subnet to the auth ports; nil: off.
    public var authPerSubnet: Rate? = Rate(20, per: .minute, burst: 5)

    /// A subnet completing new connections faster than this is blocked for `escalationBlockFor`; nil: off.
    /// It bans a whole subnet, so it sits well above what legitimate sources can reach under the other
    /// limits: 50 completed connections a second, sustained (a burst of a minute's worth), is two and a
    /// half sources at their full `newConnectionsPerSource`; an office or a carrier NAT behind one /24
    /// stays clear of it. Spoofed SYNs never count (only completed handshakes do).
    public var escalationPerSubnet: Rate? = Rate(3000, per: .minute, burst: 3000)
    public var escalationBlockFor = PolicyDuration(seconds: 30 * 60)

    /// Default lifetime of a ban added without one, and the ban sets' capacity.
    public var blocklistTimeout = PolicyDuration(seconds: 3600)
    public var blocklistSize = 65536
    /// Bans the policy itself holds (added with the default timeout at each load).
    public var blocklist: [AddressPrefix] = []
    /// Sources never limited, in either layer.
    public var allowlist: [AddressPrefix] = []

    /// When set, drop rules log with this prefix.
    public var logPrefix: String?
    /// When set, connections carrying this conntrack mark are dropped (for an external fingerprinting daemon).
    public var ctMarkDrop: UInt32?

    /// The XDP layer.
    /// When the enforce loop bans persistent violators (`gatewarden enforce`, or inside `serve`).
    public var enforce = EnforceSettings.seedDefaults

    public var xdpEnabled = true
    public var xdpSourcesMapSize = Int(1 << 20)
    public var xdpSubnetsMapSize = Int(1 << 18)

    /// The TLS-session-reuse feed (the nginx log read by the enforce loop); nil: off.
    public var tlsSessionReuse: TLSSessionReuseSettings?

    public init() {}

    /// The policy used without `--policy`: the seed articles' limits.
    public static let builtInDefault = Policy()

    /// The XDP program's share of the policy. With the XDP layer disabled every rate is off there
    /// (the program still runs, counting and enforcing the lists).
    public var xdpLimits: XDPLimits {
        func xdp(_ rate: Rate?) -> XDPLimits.Rate {
            guard xdpEnabled, let rate else { return .init(packetsPerSecond: 0, burst: 0) }
            return .init(packets: rate.count, perSeconds: rate.unit.seconds, burst: rate.burst)
        }
        return XDPLimits(source: xdp(perSource), subnet: xdp(perSubnet), ipv4SubnetPrefix: ipv4SubnetPrefix,
                         ipv6SubnetPrefix: ipv6SubnetPrefix, protectedPorts: protectedPorts,
                         observe: mode == .observe)
    }

    /// The XDP program's share of the policy on a host whose synproxy answers with `handshake`, on the
    /// Ethernet interface `interfaceMAC`:
    /// in enforce mode with the XDP layer on, SYNs under every limit are answered in XDP with the
    /// SYN-ACK synproxy would send (observe mode and a disabled XDP layer leave them to nftables).
    public func xdpLimits(handshake: HandshakeOptions, interfaceMAC: [UInt8]) -> XDPLimits {
        var limits = xdpLimits
        if mode == .enforce && xdpEnabled { limits.synCookies = handshake.xdpSynCookies(interfaceMAC: interfaceMAC) }
        return limits
    }
}

/// What the limits do with traffic over them.
public enum EnforcementMode: String, Sendable, Equatable, CaseIterable {
    /// Drop and reset what is over a limit; escalation bans.
    case enforce
    /// Judge everything as `enforce` would and count it (XDP: `action="would_drop"`; nftables: each
    /// rule's own counter), but drop, reset and ban nothing for a limit. Bans already in force still drop.
    case observe
}
