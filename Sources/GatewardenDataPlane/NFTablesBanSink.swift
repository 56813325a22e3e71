import Foundation
import GatewardenCore
import GatewardenKernel

/// The nftables layer: the kept ban sets `block_v4` and `block_v6` of table `inet gatewarden`
/// (interval sets with a timeout per element), matched in the raw-priority prerouting chain. The
/// policy's own bans live in `policy_block_*` and are never touched here.
///
/// An interval set refuses an element overlapping another, so a ban inside a wider one already
/// held is left out (the wider one covers it), and a wider ban replaces the narrower ones it
/// covers, in the same transaction.
public struct NFTablesBanSink: BanSink {
    public let layer = BanLayer.nft
    public let namespace: NetworkNamespace

    /// Bans written "for good": nft element timeouts need a length; ten years is the longest a
    /// policy duration may be.
    static let forGood = PolicyDuration.maximum.seconds

    public init(namespace: NetworkNamespace) {
        self.namespace = namespace
    }

    public struct TableMissing: Error, CustomStringConvertible {
        public let namespace: NetworkNamespace
        public var description: String { "table \(GatewardenTable.qualifiedName) is missing in \(namespace)" }
    }

    static func setName(ipv4: Bool) -> String { ipv4 ? "block_v4" : "block_v6" }

    public func tableExists() throws -> Bool {
        try NFTables(namespace: namespace).tableExists(family: GatewardenTable.family, name: GatewardenTable.name)
    }

    public func installed(now: Date) throws -> [AddressPrefix: Date?] {
        let nft = try NFTables(namespace: namespace)
        guard try nft.tableExists(family: GatewardenTable.family, name: GatewardenTable.name) else { return [:] }
        var held: [AddressPrefix: Date?] = [:]
        for ipv4 in [true, false] {
            let json = try nft.run("list set \(GatewardenTable.qualifiedName) \(Self.setName(ipv4: ipv4))", json: true)
            // Remaining times count from the listing, not from the interval's start: with 100,000
            // elements the two are seconds apart.
            let listedAt = Date()
            for (prefix, expires) in Self.elements(inListing: json) {
                held[prefix] = expires.map { $0 >= Double(Self.forGood) - 86400 ? nil : listedAt.addingTimeInterval($0) } ?? .some(nil)
            }
        }
        return held
    }

    @discardableResult
    public func apply(_ wanted: [BlocklistHolder: [AddressPrefix: Date?]], now: Date) throws -> Int {
        let nft = try NFTables(namespace: namespace)
        guard try nft.tableExists(family: GatewardenTable.family, name: GatewardenTable.name) else {
            throw TableMissing(namespace: namespace)
        }
        // nftables keeps one element per prefix: it holds the latest of its holders' expiries.
        var folded: [AddressPrefix: Date?] = [:]
        for bans in wanted.values {
            for (prefix, expiry) in bans {
                if let held = folded[prefix] { folded[prefix] = held.flatMap { current in expiry.map { max(current, $0) } } }
                else { folded[prefix] = expiry }
            }
        }
        let current = try installed(now: now)
        let needed = folded.filter { prefix, expiry in current[prefix].map { Self.differs($0, expiry, now: now) } ?? true }
        guard !needed.isEmpty else { return 0 }
        let plan = IntervalPlan(present: current.keys, needed: needed)
        let additions = plan.additions
        // Held with another expiry: replaced in the same transaction (an element's timeout is set
        // when it is added).
        let removals = plan.removals + additions.map(\.0).filter { current[$0] != nil }
        var commands: [String] = []
        for ipv4 in [true, false] {
            let set = "\(GatewardenTable.qualifiedName) \(Self.setName(ipv4: ipv4))"
            for chunk in removals.filter({ $0.isIPv4 == ipv4 }).chunked(4096) {
                commands.append("delete element \(set) { \(chunk.map(\.description).joined(separator: ", ")) }")
            }
            for chunk in additions.filter({ $0.0.isIPv4 == ipv4 }).chunked(4096) {
                // A timeout counts from when the element is written, which a large batch reaches well
                // after the interval began: counted from now, the element ends when the ban does.
                let writtenAt = Date()
                let elements = chunk.map { "\($0.0) timeout \(Self.timeoutText(until: $0.1, now: writtenAt))" }
                commands.append("add element \(set) { \(elements.joined(separator: ", ")) }")
            }
        }
        if !commands.isEmpty { try nft.run(commands.joined(separator: "\n") + "\n") }
        return additions.count
    }

    public func lift(_ prefixes: [AddressPrefix], for holders: Set<BlocklistHolder>, lastHolder: Bool) throws {
        guard lastHolder else { return }
        let nft = try NFTables(namespace: namespace)
        guard try nft.tableExists(family: GatewardenTable.family, name: GatewardenTable.name) else { return }
        let held = try installed(now: Date())
        let present = prefixes.filter { held[$0] != nil }
        guard !present.isEmpty else { return }
        var commands: [String] = []
        for ipv4 in [true, false] {
            let gone = present.filter { $0.isIPv4 == ipv4 }
            for chunk in gone.chunked(4096) {
                commands.append("delete element \(GatewardenTable.qualifiedName) \(Self.setName(ipv4: ipv4)) { \(chunk.map(\.description).joined(separator: ", ")) }")
            }
        }
        try nft.run(commands.joined(separator: "\n") + "\n")
    }

    /// An element timeout in nft's composite form (`1d2h3m4s`): nft refuses a large count of
    /// seconds alone that it accepts split into units.
    static func timeoutText(until expiry: Date?, now: Date) -> String {
        let seconds = expiry.map { UInt64(max(1, min($0.timeIntervalSince(now).rounded(.up), Double(forGood)))) } ?? forGood
        var rest = seconds
        var text = ""
        for (suffix, size) in [("d", UInt64(86400)), ("h", 3600), ("m", 60), ("s", 1)] where rest >= size {
            text += "\(rest / size)\(suffix)"
            rest %= size
        }
        return text
    }

    /// The elements of a `list set` JSON listing, with their remaining seconds (nil: no expiry).
    public static func elements(inListing json: String) -> [(AddressPrefix, TimeInterval?)] {
        guard let root = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let objects = root["nftables"] as? [[String: Any]] else { return [] }
        var found: [(AddressPrefix, TimeInterval?)] = []
        for object in objects {
            guard let set = object["set"] as? [String: Any], let elements = set["elem"] as? [Any] else { continue }
            for element in elements {
                var value: Any? = element
                var expires: TimeInterval?
                if let wrapped = (element as? [String: Any])?["elem"] as? [String: Any] {
                    value = wrapped["val"]
                    expires = (wrapped["expires"] as? NSNumber)?.doubleValue
                }
                let text: String?
                if let address = value as? String {
                    text = address
                } else if let prefix = (value as? [String: Any])?["prefix"] as? [String: Any],
                          let address = prefix["addr"] as? String, let length = prefix["len"] as? Int {
                    text = "\(address)/\(length)"
                } else {
                    text = nil   // a range written by hand: not a ban Gatewarden manages
                }
                if let text, let prefix = try? AddressPrefix(text) { found.append((prefix, expires)) }
            }
        }
        return found
    }
}

extension Array {
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}

/// Which bans to add to an interval set and which narrower ones to delete for them, found with
/// hashed look-ups per prefix length rather than by comparing every ban with every other: a
/// restore of 100,000 bans into an empty set is 100,000 steps, not 10^10.
///
/// A needed ban inside a wider one present (or added before it: the widest go first) is left out;
/// a needed ban that covers narrower ones present replaces them.
struct IntervalPlan {
    private(set) var additions: [(AddressPrefix, Date?)] = []
    private(set) var removals: [AddressPrefix] = []

    init<Present: Sequence>(present: Present, needed: [AddressPrefix: Date?]) where Present.Element == AddressPrefix {
        var present = Set(present)
        // The prefix lengths in use per family: a wider ban can only be one of these.
        var lengths: [Bool: Set<Int>] = [:]
        for prefix in present { lengths[prefix.isIPv4, default: []].insert(prefix.length) }
        // The bans present, filed under their network at each length a needed ban has, so the
        // ones a needed ban covers are one look-up away.
        let neededLengths = Set(needed.keys.map { LengthKey(isIPv4: $0.isIPv4, length: $0.length) })
        var narrower: [AddressPrefix: [AddressPrefix]] = [:]
        for prefix in present {
            for key in neededLengths where key.isIPv4 == prefix.isIPv4 && key.length < prefix.length {
                narrower[prefix.widened(to: key.length), default: []].append(prefix)
            }
        }
        // Widest first, so a narrower ban finds the wider one that covers it.
        for (prefix, expiry) in needed.sorted(by: { ($0.key.length, $0.key.description) < ($1.key.length, $1.key.description) }) {
            let wider = (lengths[prefix.isIPv4] ?? []).filter { $0 < prefix.length }
            if wider.contains(where: { present.contains(prefix.widened(to: $0)) }) { continue }
            let covered = (narrower[prefix] ?? []).filter { present.contains($0) }
            removals += covered
            for gone in covered { present.remove(gone) }
            present.insert(prefix)
            lengths[prefix.isIPv4, default: []].insert(prefix.length)
            additions.append((prefix, expiry))
        }
    }

    private struct LengthKey: Hashable {
        let isIPv4: Bool
        let length: Int
    }
}
