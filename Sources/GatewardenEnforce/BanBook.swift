import Foundation
import GatewardenCore
import GatewardenDataPlane
import GatewardenKernel

/// Bans as one thing across the store and both kernel layers: what `bans add/remove/list` and the
/// enforce loop act through. The store is written first (so a crash between the two leaves a ban
/// the next interval applies, never a kernel ban nobody remembers); the layers are then brought to
/// hold every active ban of the store. Nothing is ever flushed: a layer only gains or extends bans,
/// and loses exactly the ones removed here.
///
///     let book = BanBook(store: store, sinks: BanBook.sinks(for: namespace))
///     try book.add(Ban(prefix: prefix, origin: .manual, created: now, expires: nil), now: now)
public struct BanBook {
    public let store: BanStore
    public let sinks: [BanSink]

    public init(store: BanStore, sinks: [BanSink]) {
        self.store = store
        self.sinks = sinks
    }

    /// The XDP and nftables layers of a namespace.
    public static func sinks(for namespace: NetworkNamespace, pinRoot: String = PinLayout.defaultRoot) -> [BanSink] {
        [XDPBanSink(namespace: namespace, pinRoot: pinRoot), NFTablesBanSink(namespace: namespace)]
    }

    /// What the layers should hold for each holder: every applied ban in force, folded per prefix.
    /// The policy's own bans are `load`'s business and never written from here.
    public func wanted(now: Date) throws -> [BlocklistHolder: [AddressPrefix: Date?]] {
        let bans = try store.activeBans(at: now).filter { $0.origin != .policy }
        return [.manual: BanFold.expiries(of: bans.filter { $0.origin == .manual }),
                .enforce: BanFold.expiries(of: bans.filter { $0.origin.isEnforced })]
    }

    /// Brings every layer to hold what the store says; returns, per layer, how many bans it wrote.
    /// A layer that fails does not stop the others; its error comes back with the counts.
    public func apply(now: Date) throws -> (written: [BanLayer: Int], errors: [BanLayer: Error]) {
        let wanted = try wanted(now: now)
        var written: [BanLayer: Int] = [:]
        var errors: [BanLayer: Error] = [:]
        for sink in sinks {
            do {
                for holder in [BlocklistHolder.manual, .enforce] {
                    written[sink.layer, default: 0] += try sink.hold(wanted[holder] ?? [:], for: holder, now: now)
                }
            } catch {
                errors[sink.layer] = error
            }
        }
        return (written, errors)
    }

    /// Stores `ban` and applies it to both layers.
    public func add(_ ban: Ban, now: Date) throws -> (written: [BanLayer: Int], errors: [BanLayer: Error]) {
        try store.add(ban)
        return try apply(now: now)
    }

    /// Removes the bans of `prefix` (of `origin`, or of every origin but the policy's) from the store,
    /// then from the layers, unless another origin still bans it there. Returns what was removed.
    public func remove(_ prefix: AddressPrefix, origin: BanOrigin? = nil, now: Date) throws -> [Ban] {
        var removed: [Ban] = []
        if let origin {
            removed = try store.remove(prefix: prefix, origin: origin).map(\.ban)
        } else {
            for origin in BanOrigin.allCases where origin != .policy {
                removed += try store.remove(prefix: prefix, origin: origin).map(\.ban)
            }
        }
        // Only what the store held is lifted: a ban the store does not know (another state directory,
        // a hand-made nft element) is not this removal's to touch.
        guard !removed.isEmpty else { return [] }
        let remaining = try store.activeBans(at: now).filter { $0.prefix == prefix && $0.origin != .policy }
        var released: Set<BlocklistHolder> = []
        if !remaining.contains(where: { $0.origin == .manual }) { released.insert(.manual) }
        if !remaining.contains(where: { $0.origin.isEnforced }) { released.insert(.enforce) }
        for sink in sinks { try sink.lift([prefix], for: released, lastHolder: remaining.isEmpty) }
        // A narrower ban the lifted one covered in nftables' interval set goes in now.
        _ = try apply(now: now)
        return removed
    }

    /// One listed ban: the store's entry and the layers that hold its prefix now.
    public struct Listing: Sendable {
        public var ban: Ban
        public var applied: Bool
        public var layers: [BanLayer]
    }

    /// Every ban in force (observe-mode ones too, marked not applied), with where it is held.
    public func list(now: Date) throws -> [Listing] {
        var held: [BanLayer: [AddressPrefix: Date?]] = [:]
        for sink in sinks { held[sink.layer] = (try? sink.installed(now: now)) ?? [:] }
        let entries = try store.allEntries().filter { $0.ban.isActive(at: now) }
        return entries.map { entry in
            let layers = sinks.map(\.layer).filter { held[$0]?[entry.ban.prefix] != nil }
            return Listing(ban: entry.ban, applied: entry.applied, layers: entry.applied ? layers : [])
        }.sorted { ($0.ban.created, $0.ban.prefix.description) < ($1.ban.created, $1.ban.prefix.description) }
    }
}
