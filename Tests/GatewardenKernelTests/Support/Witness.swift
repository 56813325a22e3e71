import Foundation

/// A witness in the gateway namespace: an nftables table of its own whose chain runs before every
/// other (priority -350, ahead of raw) and counts the UDP packets to a port from each source. What
/// it counts got past XDP: the proof that a ban, or a limit, let nothing (or everything) through.
extension LabNetwork {
    static let witnessTable = "gwtest-witness"

    func addWitness(sources: [String], port: Int = 443) throws {
        try inGateway(["nft", "add table inet \(Self.witnessTable)"])
        try inGateway(["nft", "add chain inet \(Self.witnessTable) pre { type filter hook prerouting priority -350 ; }"])
        for source in sources {
            try inGateway(["nft", "add rule inet \(Self.witnessTable) pre ip saddr \(source) udp dport \(port) counter"])
        }
    }

    /// Packets the witness counted from `source`, or -1 without a witness for it.
    func witnessPackets(from source: String) throws -> Int {
        let listing = try inGateway(["nft", "list chain inet \(Self.witnessTable) pre"]).stdout
        for line in listing.split(separator: "\n") where line.contains("saddr \(source) ") {
            guard let range = line.range(of: #"packets (\d+)"#, options: .regularExpression) else { continue }
            return Int(line[range].split(separator: " ")[1]) ?? -1
        }
        return -1
    }
}
