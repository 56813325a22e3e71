import GatewardenCore
import GatewardenPolicy

/// Remembers, per prefix, the enforce intervals in which it had drops, and names the prefixes that
/// had drops in at least `violations` distinct intervals within the last `windowIntervals`: the
/// candidates for a ban. One tracker per signal (sources, subnets, ...): their keys never mix.
///
/// Memory is bounded: at most `capacity` prefixes are tracked, each in a fixed number of words.
/// When the tracker is full, new prefixes are not tracked and are counted as untracked (the loop
/// exports the count); prefixes already tracked keep being counted, and a prefix whose last drop
/// left the window is forgotten at the next interval. A spoofed flood of one-off sources therefore
/// never promotes anyone and never grows the tracker past `capacity`. While it is full, whoever
/// comes first in an interval gets the free slots: pass the heaviest droppers first, so a flood of
/// light one-offs cannot crowd out a real offender.
///
///     var tracker = ViolationTracker(violations: 5, windowIntervals: 6)
///     for interval in 1...5 {
///         let report = tracker.record(interval: UInt64(interval), offenders: [PrefixKey(abuser)])
///         // report.promoted is [PrefixKey(abuser)] at interval 5, empty before
///     }
public struct ViolationTracker: Sendable {
    /// The default bound on tracked prefixes: 2^18. Each keeps its last `violations` intervals (8 bytes
    /// each) besides its key: 10 MB with the default 5 violations, up to 140 MB at the maximum of 64.
    public static let defaultCapacity = 262_144
    /// The largest `violations` accepted (the policy's limit): each tracked prefix keeps its last
    /// `violations` intervals with drops.
    public static let maximumViolations = EnforceSettings.maximumViolations

    /// In how many distinct intervals a prefix must have had drops.
    public let violations: Int
    /// How many intervals, counting the current one, those may span.
    public let windowIntervals: Int
    /// The most prefixes tracked at once.
    public let capacity: Int
    /// Prefixes that could not be tracked because the tracker was full, since it was created
    /// (a counter for `gatewarden_enforce_untracked_total`-style metrics).
    public private(set) var untrackedTotal: UInt64 = 0

    /// What one call to `record` found.
    public struct Report: Sendable, Equatable {
        /// Prefixes of this call that now have drops in `violations` intervals within the window,
        /// in the order they came. They stay tracked: one still dropping is named again next
        /// interval, which the ban store ignores while its ban lasts.
        public var promoted: [PrefixKey] = []
        /// Prefixes of this call that were new while the tracker was full, so not tracked.
        public var untracked = 0

        public init(promoted: [PrefixKey] = [], untracked: Int = 0) {
            self.promoted = promoted
            self.untracked = untracked
        }
    }

    // Per-slot state in flat arrays: one allocation each, however many prefixes are tracked.
    private var slotOfKey: [PrefixKey: Int32] = [:]
    private var keyOfSlot: [PrefixKey] = []
    /// The last interval a slot's prefix had drops in; `Self.freeSlot` when the slot is free.
    private var lastInterval: [UInt64] = []
    /// `violations` intervals per slot: a ring of the most recent intervals with drops.
    private var recentIntervals: [UInt64] = []
    private var ringHead: [UInt8] = []
    private var ringCount: [UInt8] = []
    private var freeSlots: [Int32] = []
    private var currentInterval: UInt64 = 0

    private static let freeSlot = UInt64.max

    /// - Parameters:
    ///   - violations: clamped to `1...maximumViolations` (`EnforceSettings.problems` reports a policy outside).
    ///   - windowIntervals: at least 1.
    ///   - capacity: at least 1.
    public init(violations: Int, windowIntervals: Int, capacity: Int = Self.defaultCapacity) {
        self.violations = min(max(violations, 1), Self.maximumViolations)
        self.windowIntervals = max(windowIntervals, 1)
        self.capacity = min(max(capacity, 1), Int(Int32.max))
    }

    /// A tracker for the settings' `violations` and `window`.
    public init(_ settings: EnforceSettings, capacity: Int = Self.defaultCapacity) {
        self.init(violations: settings.violations, windowIntervals: settings.windowIntervals, capacity: capacity)
    }

    /// How many prefixes are tracked now (never more than `capacity`).
    public var trackedCount: Int { slotOfKey.count }

    /// Records that `offenders` had drops in `interval` and returns those now due for a ban.
    ///
    /// `interval` is the loop's interval number and must not decrease (an older number counts
    /// as the latest one seen). One interval may be recorded in several calls (say, one per batch
    /// of map entries): a prefix named twice in the same interval counts once.
    public mutating func record(interval: UInt64, offenders: some Sequence<PrefixKey>) -> Report {
        if interval > currentInterval {
            currentInterval = interval
            forgetStale()
        }
        let now = currentInterval
        var report = Report()
        for key in offenders {
            guard let slot = slotOfKey[key] else {
                if track(key, at: now) {
                    if violations == 1 { report.promoted.append(key) }
                } else {
                    report.untracked += 1
                }
                continue
            }
            let index = Int(slot)
            guard lastInterval[index] != now else { continue }
            if note(now, inSlot: index) { report.promoted.append(key) }
        }
        untrackedTotal &+= UInt64(report.untracked)
        return report
    }

    /// `record(interval:offenders:)` for prefixes; promotions come back as prefixes.
    public mutating func record(interval: UInt64, offenders: some Sequence<AddressPrefix>)
        -> (promoted: [AddressPrefix], untracked: Int) {
        let report = record(interval: interval, offenders: offenders.lazy.map(PrefixKey.init))
        return (report.promoted.map(\.prefix), report.untracked)
    }

    /// Starts tracking `key` with a drop in `interval`; false when the tracker is full.
    private mutating func track(_ key: PrefixKey, at interval: UInt64) -> Bool {
        let index: Int
        if let free = freeSlots.popLast() {
            index = Int(free)
            keyOfSlot[index] = key
            lastInterval[index] = interval
        } else if keyOfSlot.count < capacity {
            index = keyOfSlot.count
            keyOfSlot.append(key)
            lastInterval.append(interval)
            recentIntervals.append(contentsOf: repeatElement(0, count: violations))
            ringHead.append(0)
            ringCount.append(0)
        } else {
            return false
        }
        slotOfKey[key] = Int32(index)
        recentIntervals[index * violations] = interval
        ringHead[index] = UInt8(1 % violations)
        ringCount[index] = 1
        return true
    }

    /// Adds a drop in `interval` to a tracked slot; whether the slot now has `violations` intervals
    /// with drops within the window.
    private mutating func note(_ interval: UInt64, inSlot index: Int) -> Bool {
        lastInterval[index] = interval
        let base = index * violations
        let head = Int(ringHead[index])
        recentIntervals[base + head] = interval
        let next = head + 1 == violations ? 0 : head + 1
        ringHead[index] = UInt8(next)
        let count = min(Int(ringCount[index]) + 1, violations)
        ringCount[index] = UInt8(count)
        // Full ring: `next` holds the oldest of the last `violations` intervals with drops.
        return count == violations && interval - recentIntervals[base + next] < UInt64(windowIntervals)
    }

    /// Frees the slots whose last drop has left the window: they can no longer count.
    private mutating func forgetStale() {
        let now = currentInterval
        let window = UInt64(windowIntervals)
        for index in lastInterval.indices {
            let last = lastInterval[index]
            guard last != Self.freeSlot, now - last >= window else { continue }
            slotOfKey[keyOfSlot[index]] = nil
            lastInterval[index] = Self.freeSlot
            freeSlots.append(Int32(index))
        }
    }
}
