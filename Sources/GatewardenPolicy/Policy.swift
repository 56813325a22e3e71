/// What Gatewarden protects and how. One policy drives both layers: the nftables ruleset
/// and the XDP program's configuration maps.
///
/// The walking skeleton knows the protected ports only; limits, lists and their YAML form
/// grow here.
///
///     let policy = Policy.builtInDefault
///     print(NFTablesRuleset(policy: policy).text)
public struct Policy: Sendable, Equatable {
    /// Destination ports whose traffic is limited (TCP and UDP).
    public var protectedPorts: [UInt16]

    public init(protectedPorts: [UInt16]) {
        self.protectedPorts = protectedPorts
    }

    /// The policy used without `--policy`: HTTP and HTTPS, as the seed articles protect.
    public static let builtInDefault = Policy(protectedPorts: [80, 443])
}
