import Foundation
import GatewardenCore

/// One kernel layer that holds bans: the XDP blocklist of every instance in a namespace, or the
/// nftables table's ban sets. The enforce loop and `bans add/remove` write through it; it never
/// flushes, and it touches only the bans it manages (never the policy's).
///
///     let sinks: [BanSink] = [XDPBanSink(namespace: lab), NFTablesBanSink(namespace: lab)]
///     for sink in sinks { try sink.apply([.manual: manual, .enforce: enforced], now: Date()) }
public protocol BanSink {
    var layer: BanLayer { get }

    /// The managed bans this layer holds now, with their expiry (nil: for good).
    func installed(now: Date) throws -> [AddressPrefix: Date?]

    /// Makes every ban of `wanted` held until exactly its expiry (within a couple of seconds), per
    /// holder where the layer records who holds a ban (manual bans and enforced ones keep separate
    /// lifetimes): adds the missing ones, extends or shortens the others; bans not in `wanted` are
    /// left as they are. Reads the layer once. Returns how many bans it wrote.
    @discardableResult
    func apply(_ wanted: [BlocklistHolder: [AddressPrefix: Date?]], now: Date) throws -> Int

    /// Lifts `holders`' bans on `prefixes` (exact prefixes, not what they contain); a layer that
    /// records no holders lifts the ban only when `lastHolder` says no holder is left.
    func lift(_ prefixes: [AddressPrefix], for holders: Set<BlocklistHolder>, lastHolder: Bool) throws
}

extension BanSink {
    /// Whether a layer holding a ban until `current` (nil: for good) must be rewritten to hold it until
    /// `wanted`. Expiries within 2 seconds, or 2% of the time left, are the same: a layer counts a
    /// timeout from when it wrote the ban (a 100,000-ban write takes tens of seconds), and the wall
    /// clock drifts against the boot clock; rewriting every ban at every interval for that would cost
    /// more than the precision is worth.
    static func differs(_ current: Date?, _ wanted: Date?, now: Date) -> Bool {
        switch (current, wanted) {
        case (nil, nil): return false
        case let (current?, wanted?):
            let slack = max(2, 0.02 * wanted.timeIntervalSince(now))
            return abs(current.timeIntervalSince(wanted)) > slack
        default: return true
        }
    }
}

/// Folds bans into what a layer holds: one entry per prefix, the latest expiry of its bans
/// (for good if any is).
public enum BanFold {
    public static func expiries(of bans: [Ban]) -> [AddressPrefix: Date?] {
        var folded: [AddressPrefix: Date?] = [:]
        for ban in bans {
            if let current = folded[ban.prefix] {
                guard let held = current, let expiry = ban.expires else { folded[ban.prefix] = .some(nil); continue }
                folded[ban.prefix] = max(held, expiry)
            } else {
                folded[ban.prefix] = ban.expires
            }
        }
        return folded
    }
}
