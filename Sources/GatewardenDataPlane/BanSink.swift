import Foundation
import GatewardenCore

/// One kernel layer that holds bans: the XDP blocklist of every instance in a namespace, or the
/// nftables table's ban sets. The enforce loop and `bans add/remove` write through it; it never
/// flushes, and it touches only the bans it manages (never the policy's).
///
///     let sinks: [BanSink] = [XDPBanSink(namespace: lab), NFTablesBanSink(namespace: lab)]
///     for sink in sinks { try sink.hold(wanted, now: Date()) }
public protocol BanSink {
    var layer: BanLayer { get }

    /// The managed bans this layer holds now, with their expiry (nil: for good).
    func installed(now: Date) throws -> [AddressPrefix: Date?]

    /// Makes every ban of `wanted` present until at least its expiry, held for `holder` (manual
    /// bans and enforced ones keep separate lifetimes where a layer records who holds a ban): adds
    /// the missing ones and extends the shorter ones; leaves every other ban as it is. Returns how
    /// many it wrote.
    @discardableResult
    func hold(_ wanted: [AddressPrefix: Date?], for holder: BlocklistHolder, now: Date) throws -> Int

    /// Lifts `holders`' bans on `prefixes` (exact prefixes, not what they contain); a layer that
    /// records no holders lifts the ban once `remaining` says no holder is left.
    func lift(_ prefixes: [AddressPrefix], for holders: Set<BlocklistHolder>, lastHolder: Bool) throws
}

extension BanSink {
    /// The bans of `wanted` this layer lacks or holds too briefly (by more than `slack`).
    func missing(from installed: [AddressPrefix: Date?], wanted: [AddressPrefix: Date?],
                 slack: TimeInterval = 2) -> [AddressPrefix: Date?] {
        wanted.filter { prefix, expiry in
            guard let current = installed[prefix] else { return true }
            guard let current else { return false }                 // held for good already
            guard let expiry else { return true }                   // wanted for good
            return expiry.timeIntervalSince(current) > slack
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
