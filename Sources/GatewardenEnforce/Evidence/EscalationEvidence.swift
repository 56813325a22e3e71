import Foundation
import GatewardenCore
import GatewardenDataPlane
import GatewardenKernel

/// The subnets nftables' escalation rule banned (`blocked_subnets_v4/v6`, filled by the kernel as a
/// subnet opens connections over its escalation rate). The rule itself judged them persistent, so
/// each becomes a ban in both layers, with the enforce loop's lengths and memory of repeat offences.
public struct EscalationEvidence {
    public let namespace: NetworkNamespace

    public init(namespace: NetworkNamespace) {
        self.namespace = namespace
    }

    /// The escalated subnets at the policy's prefix lengths; none when the table is missing.
    public func subnets(ipv4Prefix: Int, ipv6Prefix: Int) throws -> [AddressPrefix] {
        let nft = try NFTables(namespace: namespace)
        guard try nft.tableExists(family: GatewardenTable.family, name: GatewardenTable.name) else { return [] }
        var found: [AddressPrefix] = []
        for (set, length) in [("blocked_subnets_v4", ipv4Prefix), ("blocked_subnets_v6", ipv6Prefix)] {
            guard let json = try? nft.run("list set \(GatewardenTable.qualifiedName) \(set)", json: true) else { continue }
            found += NFTablesBanSink.elements(inListing: json).map { $0.0.widened(to: length) }
        }
        return found
    }
}
