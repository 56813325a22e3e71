import Foundation
import GatewardenCore
import GatewardenDataPlane
import GatewardenKernel
import GatewardenLoad
import GatewardenPolicy

/// Puts back what another tool removed from a namespace where `gatewarden load` installed
/// Gatewarden: the nftables table (an `nft flush ruleset`, a firewall restart, a table deleted) and
/// the XDP attachment (a link detached). Only where load's pins still say it put them there: after
/// `gatewarden unload` there are none, and nothing is repaired.
///
/// Repairing is loading again with the enforcer's policy, in place: the program running is kept
/// when it is this binary's, maps and bans stay, the table comes back in one transaction. The
/// bans themselves come back from the ban store at the same interval.
public struct KernelRepair {
    public let namespace: NetworkNamespace
    public let pinRoot: String

    public init(namespace: NetworkNamespace, pinRoot: String = PinLayout.defaultRoot) {
        self.namespace = namespace
        self.pinRoot = pinRoot
    }

    /// What is missing: `table` and/or `xdp` (per interface, named once).
    public func damage() throws -> Set<String> {
        let interfaces = PinLayout.interfaces(root: pinRoot, namespace: namespace)
        guard !interfaces.isEmpty else { return [] }
        var damage: Set<String> = []
        if try !NFTables(namespace: namespace).tableExists(family: GatewardenTable.family, name: GatewardenTable.name) {
            damage.insert("table")
        }
        for interface in interfaces {
            let link = XDPLink(pinPath: PinLayout(root: pinRoot, namespace: namespace, interface: interface).link)
            if link.exists, (try? link.info())?.interfaceIndex ?? 0 == 0 { damage.insert("xdp") }
        }
        return damage
    }

    /// Loads `policy` again on every interface load put Gatewarden on; returns what it repaired.
    /// The caller holds the namespace's change lock.
    public func repair(policy: Policy) throws -> Set<String> {
        let damage = try damage()
        guard !damage.isEmpty else { return [] }
        for interface in PinLayout.interfaces(root: pinRoot, namespace: namespace) {
            let layout = PinLayout(root: pinRoot, namespace: namespace, interface: interface)
            let requested = (try? XDPMaps(layout: layout).loaderInfo()).flatMap { $0 }
                .flatMap { XDPModeChoice(abiValue: $0.requested_mode) } ?? .auto
            let deployment = Deployment(namespace: namespace, interface: interface, pinRoot: pinRoot)
            _ = try deployment.install(policy: policy, mode: requested)
        }
        return damage
    }
}
