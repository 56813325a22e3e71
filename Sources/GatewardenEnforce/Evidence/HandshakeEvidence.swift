import Foundation
import GatewardenCore
import GatewardenDataPlane
import GatewardenKernel

/// The sources that completed a TCP handshake to a protected port lately (nftables' `verified_v4/v6`
/// sets, filled by rule `verified-source-*` for every connection synproxy completed, kept 10
/// minutes). Such a source is a real host: a spoofed address never answers a SYN cookie. XDP's drop
/// counts cannot tell a flooder from the victim whose address a flood forges, so a source is banned
/// for its rate only when it is in here.
public struct HandshakeEvidence {
    public let namespace: NetworkNamespace

    public init(namespace: NetworkNamespace) {
        self.namespace = namespace
    }

    /// The verified sources (as /32 and /128); empty when the table or the sets are missing.
    public func verifiedSources() throws -> Set<AddressPrefix> {
        let nft = try NFTables(namespace: namespace)
        guard try nft.tableExists(family: GatewardenTable.family, name: GatewardenTable.name) else { return [] }
        var verified: Set<AddressPrefix> = []
        for set in ["verified_v4", "verified_v6"] {
            guard let json = try? nft.run("list set \(GatewardenTable.qualifiedName) \(set)", json: true) else { continue }
            verified.formUnion(NFTablesBanSink.elements(inListing: json).map(\.0))
        }
        return verified
    }
}
