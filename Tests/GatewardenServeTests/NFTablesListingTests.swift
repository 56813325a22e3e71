import Testing
@testable import GatewardenServe

@Suite("nftables JSON listing")
struct NFTablesListingTests {
    /// Recorded from `nft -j -t list table inet gatewarden` (nftables 1.0.6).
    static let recorded = """
    {"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, \
    {"table": {"family": "inet", "name": "gatewarden", "handle": 1}}, {"chain": {"family": "inet", "table": "gatewarden", \
    "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": -10, "policy": "accept"}}, {"rule": \
    {"family": "inet", "table": "gatewarden", "chain": "input", "handle": 3, "comment": "syn-to-protected-ports", \
    "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [80, 443]}}}, \
    {"match": {"op": "==", "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, ["syn", "ack"]]}, "right": "syn"}}, \
    {"counter": {"packets": 7, "bytes": 420}}]}}, {"rule": {"family": "inet", "table": "gatewarden", "chain": "input", \
    "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 53}}, \
    {"counter": {"packets": 3, "bytes": 200}}]}}, {"rule": {"family": "inet", "table": "gatewarden", "chain": "input", \
    "handle": 5, "comment": "icmp with spaces", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, \
    "right": "icmp"}}, {"counter": {"packets": 1, "bytes": 84}}]}}]}
    """

    @Test("commented rules with counters become samples; uncommented rules are skipped")
    func parsesCountedRules() throws {
        let listing = try NFTablesListing(json: Self.recorded)
        #expect(listing.rules == [
            .init(chain: "input", comment: "syn-to-protected-ports", packets: 7, bytes: 420),
            .init(chain: "input", comment: "icmp with spaces", packets: 1, bytes: 84),
        ])
    }

    @Test("families carry table, chain and rule labels")
    func families() throws {
        let families = try NFTablesListing(json: Self.recorded).families(table: "gatewarden")
        let packets = try #require(families.first { $0.name == "gatewarden_nft_rule_packets_total" })
        #expect(packets.type == .counter)
        #expect(packets.samples.first == .init(
            labels: [("table", "gatewarden"), ("chain", "input"), ("rule", "syn-to-protected-ports")], value: 7))
    }

    @Test("output that is not an nftables listing is an error")
    func rejectsGarbage() {
        #expect(throws: (any Error).self) { try NFTablesListing(json: #"{"other": []}"#) }
        #expect(throws: (any Error).self) { try NFTablesListing(json: "not json") }
    }
}
