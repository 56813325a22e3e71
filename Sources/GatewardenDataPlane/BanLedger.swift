import CGatewardenABI
import GatewardenCore
import GatewardenKernel

/// Who holds a ban (`enum gw_ban_origin`). Each origin keeps its own lifetime on a prefix that
/// several of them ban: the policy's bans last exactly while the policy lists them, a manual ban
/// (`gatewarden block`) and an enforced one until their own expiry (or for good).
public enum BlocklistHolder: Int, CaseIterable, Sendable, CustomStringConvertible {
    case policy = 0
    case manual = 1
    case enforce = 2

    public var description: String {
        switch self {
        case .policy: return "policy"
        case .manual: return "manual"
        case .enforce: return "enforce"
        }
    }

    var bit: UInt32 { 1 << UInt32(rawValue) }
}

/// The origins holding one blocklist entry, each with its expiry (CLOCK_BOOTTIME nanoseconds,
/// 0 = never), and the one expiry the program reads, folded from them. Kept as the map value
/// itself: a blocklist of 262,144 entries is read at every change, so no allocation per entry.
///
///     var holds = BanHolds()
///     holds.hold(.manual, until: 0)          // for good
///     holds.hold(.policy, until: 0)
///     holds.release(.policy)                 // the manual ban stays, still for good
public struct BanHolds: Equatable, Sendable {
    private var value = gw_block_entry()

    public init() {}

    /// Reads an entry. Origins whose expiry has passed by `now` are dropped: they judge nothing.
    public init(entry: gw_block_entry, now: UInt64) {
        value.added_boot_ns = entry.added_boot_ns
        for origin in BlocklistHolder.allCases where entry.origins & origin.bit != 0 {
            let expiry = Self.expiry(of: origin, in: entry)
            if expiry == 0 || expiry > now { hold(origin, until: expiry) }
        }
    }

    /// When the entry was first written (kept across changes, for `status`).
    public var addedBootNanoseconds: UInt64 {
        get { value.added_boot_ns }
        set { value.added_boot_ns = newValue }
    }

    public var isEmpty: Bool { value.origins == 0 }
    public var origins: Set<BlocklistHolder> { Set(BlocklistHolder.allCases.filter { value.origins & $0.bit != 0 }) }

    /// The expiry of `origin`'s hold (0 = never), or nil if it holds none.
    public func expiry(of origin: BlocklistHolder) -> UInt64? {
        value.origins & origin.bit == 0 ? nil : Self.expiry(of: origin, in: value)
    }

    /// The expiry the program reads: never if any origin holds the ban for good, else the latest.
    public var expiry: UInt64 { value.expires_boot_ns }

    /// Adds `origin`, or replaces its expiry: the origin's latest word is its lifetime. The policy's
    /// hold never expires.
    public mutating func hold(_ origin: BlocklistHolder, until expiry: UInt64) {
        value.origins |= origin.bit
        Self.setExpiry(origin == .policy ? 0 : expiry, of: origin, in: &value)
        fold()
    }

    /// Removes `origin`; returns whether it held the ban.
    @discardableResult
    public mutating func release(_ origin: BlocklistHolder) -> Bool {
        guard value.origins & origin.bit != 0 else { return false }
        value.origins &= ~origin.bit
        Self.setExpiry(0, of: origin, in: &value)
        fold()
        return true
    }

    /// The map value.
    public var entry: gw_block_entry { value }

    public static func == (a: BanHolds, b: BanHolds) -> Bool { BanLedger.same(a.value, b.value) }

    private mutating func fold() {
        var folded: UInt64 = 0
        for origin in BlocklistHolder.allCases where value.origins & origin.bit != 0 {
            let expiry = Self.expiry(of: origin, in: value)
            if expiry == 0 { folded = 0; break }
            folded = max(folded, expiry)
        }
        value.expires_boot_ns = folded
    }

    private static func expiry(of origin: BlocklistHolder, in entry: gw_block_entry) -> UInt64 {
        switch origin {
        case .policy: return entry.origin_expires_boot_ns.0
        case .manual: return entry.origin_expires_boot_ns.1
        case .enforce: return entry.origin_expires_boot_ns.2
        }
    }

    private static func setExpiry(_ expiry: UInt64, of origin: BlocklistHolder, in entry: inout gw_block_entry) {
        switch origin {
        case .policy: entry.origin_expires_boot_ns.0 = expiry
        case .manual: entry.origin_expires_boot_ns.1 = expiry
        case .enforce: entry.origin_expires_boot_ns.2 = expiry
        }
    }
}

/// The blocklist as one change plans it: every banned prefix with its holds. Pure, so the rules
/// of who keeps what are unit-tested without a kernel; `XDPMaps.changeBans` reads it from the map
/// once, lets the change edit it and writes back only the difference, in batches.
///
///     var ledger = BanLedger(entries: current, now: BootClock.nanoseconds)
///     ledger.replacePolicyBans(with: policy.blocklist)
public struct BanLedger: Equatable, Sendable {
    public private(set) var bans: [AddressPrefix: BanHolds]
    /// The time the change is made at: expiries of new holds count from it.
    public let now: UInt64

    /// The entries read from the map; expired holds, and entries left without any, are dropped.
    public init(entries: [AddressPrefix: gw_block_entry], now: UInt64) {
        self.now = now
        bans = entries.mapValues { BanHolds(entry: $0, now: now) }.filter { !$0.value.isEmpty }
    }

    public var count: Int { bans.count }

    /// Bans `prefix` for `origin` for `duration` (nil: for good), renewing the origin's hold.
    public mutating func hold(_ prefix: AddressPrefix, for origin: BlocklistHolder, duration: Duration?) {
        var holds = bans[prefix] ?? BanHolds()
        if holds.isEmpty { holds.addedBootNanoseconds = now }
        holds.hold(origin, until: duration.map { Self.instant(now, plus: $0) } ?? 0)
        bans[prefix] = holds
    }

    /// Lifts `origin`'s hold on `prefix`; the entry goes when no origin holds it any more.
    /// Returns whether `origin` held it.
    @discardableResult
    public mutating func release(_ prefix: AddressPrefix, for origin: BlocklistHolder) -> Bool {
        guard var holds = bans[prefix], holds.release(origin) else { return false }
        bans[prefix] = holds.isEmpty ? nil : holds
        return true
    }

    /// Makes the policy's bans exactly `prefixes`: holds on them for good, the policy's hold on any
    /// other prefix lifted (its manual or enforced holds stay, with their own expiry).
    public mutating func replacePolicyBans(with prefixes: [AddressPrefix]) {
        let listed = Set(prefixes)
        for prefix in bans.keys where !listed.contains(prefix) { release(prefix, for: .policy) }
        for prefix in listed { hold(prefix, for: .policy, duration: nil) }
    }

    /// What to write to go from `entries` (as read) to this ledger: entries to delete (lifted or
    /// expired) and entries to write (new or changed).
    public func changes(from entries: [AddressPrefix: gw_block_entry]) -> (delete: [AddressPrefix], write: [(AddressPrefix, gw_block_entry)]) {
        let delete = entries.keys.filter { bans[$0] == nil }
        let write = bans.compactMap { prefix, holds -> (AddressPrefix, gw_block_entry)? in
            let wanted = holds.entry
            if let current = entries[prefix], Self.same(current, wanted) { return nil }
            return (prefix, wanted)
        }
        return (delete, write)
    }

    /// `now` plus `duration`, saturating instead of trapping on an absurd duration.
    static func instant(_ now: UInt64, plus duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, attoseconds >= 0 else { return now }
        let (nanoseconds, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        let (sum, overflowAgain) = now.addingReportingOverflow(nanoseconds)
        guard !overflow, !overflowAgain else { return UInt64.max }
        let (result, last) = sum.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        return last ? UInt64.max : result
    }

    static func same(_ a: gw_block_entry, _ b: gw_block_entry) -> Bool {
        withUnsafeBytes(of: a) { x in withUnsafeBytes(of: b) { y in x.elementsEqual(y) } }
    }
}
