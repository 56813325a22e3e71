/// The nftables table Gatewarden owns in each namespace, `inet gatewarden`: the ruleset renders it,
/// `load` replaces it, `unload` deletes it, the exporter and the enforcer read it.
public enum GatewardenTable {
    public static let family = "inet"
    public static let name = "gatewarden"
    /// As nft commands name it: `inet gatewarden`.
    public static var qualifiedName: String { "\(family) \(name)" }
}
