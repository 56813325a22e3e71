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

    /// Brings every layer to hold what the store says, each ban until exactly its expiry (a ban
    /// shortened by `bans add --for` is shortened in the kernel too); returns, per layer, how many
    /// bans it wrote.
    /// A layer that fails does not stop the others; its error comes back with the counts.
    public func apply(now: Date) throws -> (written: [BanLayer: Int], errors: [BanLayer: Error]) {
        let wanted = try wanted(now: now)
        var written: [BanLayer: Int] = [:]
        var errors: [BanLayer: Error] = [:]
        for sink in sinks {
            do { written[sink.layer] = try sink.apply(wanted, now: now) } catch { errors[sink.layer] = error }
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
        let origins = origin.map { Set([$0]) } ?? Set(BanOrigin.allCases.filter { $0 != .policy })
        // Only what the store holds is lifted: a ban the store does not know (another state directory,
        // a hand-made nft element) is not this removal's to touch.
        let held = try store.allEntries().filter { $0.ban.prefix == prefix && origins.contains($0.ban.origin) }
        guard !held.isEmpty else { return [] }
        // The layers first: if lifting fails, the store still has the ban and says so, and the next
        // interval puts it back whole, instead of a kernel ban nobody remembers.
        try release([prefix], now: now, excluding: origins)
        var removed: [Ban] = []
        for origin in origins { removed += try store.remove(prefix: prefix, origin: origin).map(\.ban) }
        // A narrower ban the lifted one covered in nftables' interval set goes in now.
        _ = try apply(now: now)
        return removed
    }

    /// Forgets the bans that ran out and lifts them from the layers where no other ban of the store
    /// holds their prefix: a layer never keeps a ban longer than the store (nftables keeps an element
    /// until its own timeout, which a ban shortened since may outlast). Returns the expired bans.
    public func expire(now: Date) throws -> [Ban] {
        let expired = try store.expire(at: now).filter(\.applied).map(\.ban)
        if !expired.isEmpty { try release(Array(Set(expired.map(\.prefix))), now: now) }
        return expired
    }

    /// Lifts from every layer the holds on `prefixes` that no active ban of the store keeps.
    private func release(_ prefixes: [AddressPrefix], now: Date, excluding removed: Set<BanOrigin> = []) throws {
        let wanted = Set(prefixes)
        let active = try store.activeBans(at: now).filter {
            wanted.contains($0.prefix) && $0.origin != .policy && !removed.contains($0.origin)
        }
        var groups: [Set<BlocklistHolder>: (lastHolder: [AddressPrefix], others: [AddressPrefix])] = [:]
        for prefix in prefixes {
            let remaining = active.filter { $0.prefix == prefix }
            var released: Set<BlocklistHolder> = []
            if !remaining.contains(where: { $0.origin == .manual }) { released.insert(.manual) }
            if !remaining.contains(where: { $0.origin.isEnforced }) { released.insert(.enforce) }
            guard !released.isEmpty else { continue }
            if remaining.isEmpty { groups[released, default: ([], [])].lastHolder.append(prefix) }
            else { groups[released, default: ([], [])].others.append(prefix) }
        }
        for (holders, group) in groups {
            for sink in sinks {
                if !group.lastHolder.isEmpty { try sink.lift(group.lastHolder, for: holders, lastHolder: true) }
                if !group.others.isEmpty { try sink.lift(group.others, for: holders, lastHolder: false) }
            }
        }
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
