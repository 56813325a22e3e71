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
/// Repairing is loading again, in place, the policy `load` recorded (`LoadedPolicyRecord`: the text
/// it applied, not whatever the file says now, and never the enforcer's own `--policy`): the program
/// running is kept when it is this binary's, maps and bans stay, the table comes back in one
/// transaction. The bans themselves come back from the ban store at the same interval.
public struct KernelRepair {
    public let namespace: NetworkNamespace
    public let pinRoot: String

    public init(namespace: NetworkNamespace, pinRoot: String = PinLayout.defaultRoot) {
        self.namespace = namespace
        self.pinRoot = pinRoot
    }

    /// What is missing: `table` (gone, emptied, or missing a rule the recorded policy has: a chain
    /// flushed, a rule deleted), `tcp_loose` (turned back on in enforce mode: the ACK that returns a SYN
    /// cookie is then adopted by conntrack and never reaches synproxy) and/or `xdp` (per interface,
    /// named once).
    public func damage() throws -> Set<String> {
        let interfaces = PinLayout.interfaces(root: pinRoot, namespace: namespace)
        guard !interfaces.isEmpty else { return [] }
        var damage: Set<String> = []
        let nft = try NFTables(namespace: namespace)
        let recorded = try? LoadedPolicyRecord(namespace: namespace).read()?.policy()
        if try !nft.tableExists(family: GatewardenTable.family, name: GatewardenTable.name) {
            damage.insert("table")
        } else {
            // `nft flush table inet gatewarden` keeps the table and empties it: as good as gone.
            let present = try Self.ruleIdentities(nft)
            let expected = recorded.map { NFTablesRuleset(policy: $0).ruleIdentities } ?? []
            if present.isEmpty || !expected.isSubset(of: present) { damage.insert("table") }
        }
        if recorded?.mode == .enforce, try Sysctl.read(SynproxyHost.looseTracking, in: namespace).map({ $0 != "0" }) == true {
            damage.insert("tcp_loose")
        }
        for interface in interfaces {
            let link = XDPLink(pinPath: PinLayout(root: pinRoot, namespace: namespace, interface: interface).link)
            if link.exists, (try? link.info())?.interfaceIndex ?? 0 == 0 { damage.insert("xdp") }
        }
        return damage
    }

    /// The comments of the rules in the table (a terse listing: no set elements); a rule without one
    /// counts as "".
    static func ruleIdentities(_ nft: NFTables) throws -> Set<String> {
        let json = try nft.run("list table \(GatewardenTable.qualifiedName)", json: true, terse: true)
        guard let root = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let objects = root["nftables"] as? [[String: Any]] else { return [] }
        return Set(objects.compactMap { $0["rule"] as? [String: Any] }.map { $0["comment"] as? String ?? "" })
    }

    public struct NothingRecorded: Error, CustomStringConvertible {
        public let damage: Set<String>
        public var description: String {
            "\(damage.sorted().joined(separator: " and ")) missing, but no record of the policy `load` applied "
                + "(loaded by an earlier version?): run `gatewarden load` again"
        }
    }

    /// Loads the recorded policy again on every interface load put Gatewarden on; returns what it
    /// repaired. The caller holds the namespace's change lock.
    public func repair() throws -> Set<String> {
        let damage = try damage()
        guard !damage.isEmpty else { return [] }
        // First, while the table cannot complete a SYN cookie's handshake, XDP stops answering SYNs: the
        // kernel's own path serves new connections until the load below switches cookies on again.
        if !damage.isDisjoint(with: ["table", "tcp_loose"]) {
            for interface in PinLayout.interfaces(root: pinRoot, namespace: namespace) {
                try? XDPMaps(layout: PinLayout(root: pinRoot, namespace: namespace, interface: interface)).stopAnsweringSYNs()
            }
        }
        guard let source = try LoadedPolicyRecord(namespace: namespace).read() else { throw NothingRecorded(damage: damage) }
        let policy = try source.policy()
        for interface in PinLayout.interfaces(root: pinRoot, namespace: namespace) {
            let layout = PinLayout(root: pinRoot, namespace: namespace, interface: interface)
            let requested = (try? XDPMaps(layout: layout).loaderInfo()).flatMap { $0 }
                .flatMap { XDPModeChoice(abiValue: $0.requested_mode) } ?? .auto
            let deployment = Deployment(namespace: namespace, interface: interface, pinRoot: pinRoot)
            _ = try deployment.install(policy: policy, source: source, mode: requested)
        }
        return damage
    }
}
