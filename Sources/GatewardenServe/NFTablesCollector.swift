import CLinux
import Foundation
import GatewardenDataPlane
import GatewardenKernel

/// Reads Gatewarden's nftables table through libnftables (JSON) in the served namespace:
/// per-rule packet and byte counters labelled by the rule's comment, and whether the table exists.
///
/// A missing table is a state worth alerting on, not a collector failure: it is reported as
/// `gatewarden_nft_table_loaded{table} 0`.
public final class NFTablesCollector: Collector, @unchecked Sendable {
    public let name = "nftables"
    public let family: String
    public let table: String

    // libnftables contexts are not thread-safe: one listing at a time.
    private let lock = NSLock()
    private let nft: NFTables

    public init(namespace: NetworkNamespace, family: String = GatewardenTable.family, table: String = GatewardenTable.name) throws {
        self.family = family
        self.table = table
        self.nft = try NFTables(namespace: namespace)
    }

    public func collect() throws -> [MetricFamily] {
        var loaded = MetricFamily(name: "gatewarden_nft_table_loaded",
                                  help: "Whether Gatewarden's nftables table exists (1) or not (0).", type: .gauge)
        // One listing a scrape: libnftables 1.0.6 fetches every set's elements for any command
        // (even `list tables`), so each extra command would cost as much as the whole listing.
        let listing: NFTablesListing? = try lock.withLock {
            let json: String
            do {
                json = try nft.run("list table \(family) \(table)", json: true)
            } catch let error as KernelError where error.detail?.contains("No such file or directory") == true {
                return nil
            }
            return try NFTablesListing(json: ElementArrayCounter.collapse(json))
        }
        // libnftables builds and frees a cache of every set element per listing; glibc keeps the freed
        // pages in its per-thread arenas. Hand them back so the exporter's resident size stays small.
        malloc_trim(0)
        loaded.add(["table": table], listing == nil ? 0 : 1)
        guard let listing else { return [loaded] }
        return [loaded] + listing.families(table: table)
    }
}

/// The parts of a `list table` JSON listing the exporter reports; pure, so it is unit-tested
/// on recorded output.
public struct NFTablesListing: Sendable {
    /// A rule with a counter and a comment; uncommented rules have no stable identity and are skipped.
    public struct CountedRule: Sendable, Equatable {
        public var chain: String
        public var comment: String
        public var packets: UInt64
        public var bytes: UInt64
    }

    /// A named set or meter: its capacity (`size`, 0 when unbounded) and, once counted, its elements.
    public struct NamedSet: Sendable, Equatable {
        public var name: String
        public var capacity: UInt64
        public var elements: Int?
    }

    public let rules: [CountedRule]
    public var sets: [NamedSet]

    public init(json: String) throws {
        let objects = try Self.objects(json)
        rules = objects.compactMap { object in
            guard let rule = object["rule"] as? [String: Any],
                  let comment = rule["comment"] as? String,
                  let chain = rule["chain"] as? String,
                  let expressions = rule["expr"] as? [[String: Any]],
                  let counter = expressions.lazy.compactMap({ $0["counter"] as? [String: Any] }).first
            else { return nil }
            return CountedRule(chain: chain, comment: comment,
                               packets: (counter["packets"] as? NSNumber)?.uint64Value ?? 0,
                               bytes: (counter["bytes"] as? NSNumber)?.uint64Value ?? 0)
        }
        // "elem" is an array in nft's JSON, or its count once `ElementArrayCounter` collapsed it.
        sets = objects.compactMap { object in
            guard let set = (object["set"] ?? object["meter"]) as? [String: Any], let name = set["name"] as? String else { return nil }
            let elements = (set["elem"] as? NSNumber)?.intValue ?? (set["elem"] as? [Any])?.count ?? 0
            return NamedSet(name: name, capacity: (set["size"] as? NSNumber)?.uint64Value ?? 0, elements: elements)
        }
    }

    private static func objects(_ json: String) throws -> [[String: Any]] {
        guard let root = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let objects = root["nftables"] as? [[String: Any]] else {
            throw KernelError(operation: "nftables JSON listing has no \"nftables\" array")
        }
        return objects
    }

    public func families(table: String) -> [MetricFamily] {
        var packets = MetricFamily(name: "gatewarden_nft_rule_packets_total",
                                   help: "Packets matched by a Gatewarden nftables rule, by the rule's comment.",
                                   type: .counter)
        var bytes = MetricFamily(name: "gatewarden_nft_rule_bytes_total",
                                 help: "Bytes matched by a Gatewarden nftables rule, by the rule's comment.",
                                 type: .counter)
        for rule in rules {
            let labels: KeyValuePairs = ["table": table, "chain": rule.chain, "rule": rule.comment]
            packets.add(labels, Double(rule.packets))
            bytes.add(labels, Double(rule.bytes))
        }
        var elements = MetricFamily(name: "gatewarden_nft_set_elements",
                                    help: "Elements in a Gatewarden nftables set or meter.", type: .gauge)
        var capacity = MetricFamily(name: "gatewarden_nft_set_capacity",
                                    help: "Maximum elements of a Gatewarden nftables set or meter (0: unbounded).", type: .gauge)
        for set in sets {
            if let count = set.elements { elements.add(["table": table, "set": set.name], Double(count)) }
            capacity.add(["table": table, "set": set.name], Double(set.capacity))
        }
        return [packets, bytes, elements, capacity]
    }
}
