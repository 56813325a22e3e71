import GatewardenKernel

/// What Gatewarden protects and how. One policy drives both layers: the nftables ruleset
/// and the XDP program's configuration maps.
///
/// Today it holds the XDP limits and the allowlist; the YAML form and the nftables limits
/// grow here.
///
///     var policy = Policy.builtInDefault
///     policy.allowlist.append(try AddressPrefix("203.0.113.0/24"))
public struct Policy: Sendable, Equatable {
    /// Per-source and per-subnet packet limits, subnet sizes and protected ports.
    public var xdp: XDPLimits
    /// Sources that are never limited.
    public var allowlist: [AddressPrefix]

    public init(xdp: XDPLimits, allowlist: [AddressPrefix] = []) {
        self.xdp = xdp
        self.allowlist = allowlist
    }

    /// Destination ports whose traffic is limited (TCP and UDP).
    public var protectedPorts: [UInt16] { xdp.protectedPorts }

    /// The policy used without `--policy`: the seed articles' limits on HTTP and HTTPS.
    public static let builtInDefault = Policy(xdp: .default)
}
