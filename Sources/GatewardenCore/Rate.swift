
/// A token-bucket limit as nftables and the XDP program both take it: `count` packets per
/// `unit`, with a `burst`.
///
///     let rate = try Rate.parse("20/minute")     // 20 per 60 s
///     rate.nftables                              // "20/minute"
public struct Rate: Sendable, Equatable, CustomStringConvertible {
    public enum Unit: String, Sendable, CaseIterable {
        case second, minute, hour

        public var seconds: UInt64 {
            switch self {
            case .second: return 1
            case .minute: return 60
            case .hour: return 3600
            }
        }
    }

    public var count: UInt64
    public var unit: Unit
    public var burst: UInt64

    public init(_ count: UInt64, per unit: Unit, burst: UInt64) {
        self.count = count
        self.unit = unit
        self.burst = burst
    }

    /// `N/second`, `N/minute` or `N/hour` (also `N/s`, `N/m`, `N/h`); the burst is set apart.
    public static func parse(_ text: String) -> (count: UInt64, unit: Unit)? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let count = UInt64(parts[0].trimmingCharacters(in: " ")) else { return nil }
        switch parts[1].trimmingCharacters(in: " ") {
        case "second", "s", "sec": return (count, .second)
        case "minute", "m", "min": return (count, .minute)
        case "hour", "h": return (count, .hour)
        default: return nil
        }
    }

    /// The rate in nft syntax, without the burst.
    public var nftables: String { "\(count)/\(unit.rawValue)" }

    public var description: String { "\(count)/\(unit.rawValue) burst \(burst)" }

    /// Packets one second of this rate admits, rounded up; a burst below it would refuse the rate itself.
    public var packetsPerSecondCeiling: UInt64 { count / unit.seconds + (count % unit.seconds == 0 ? 0 : 1) }

    /// The fastest rate either layer can keep: one packet a nanosecond (both count time in
    /// nanoseconds between packets; a faster rate would round to no interval at all).
    public static let maximumPerSecond: UInt64 = 1_000_000_000

    /// Nanoseconds between packets at this rate, as nftables and the XDP program compute it.
    public var intervalNanoseconds: UInt64 { count == 0 ? 0 : unit.seconds * 1_000_000_000 / count }

    /// How long an emptied burst takes to refill, in nanoseconds; nil past `UInt64.max`. Both layers
    /// hold it as a nanosecond count (nftables refuses a limit whose count overflows).
    public var refillNanoseconds: UInt64? {
        let (product, overflow) = intervalNanoseconds.multipliedReportingOverflow(by: burst)
        return overflow ? nil : product
    }
}

/// A length of time written like `90s`, `30m`, `1h` or `7d`.
public struct PolicyDuration: Sendable, Equatable, CustomStringConvertible {
    public var seconds: UInt64

    public init(seconds: UInt64) {
        self.seconds = seconds
    }

    /// The longest duration accepted: ten years, "until removed" in practice. Every conversion of it
    /// (nanoseconds on the boot clock, nftables' millisecond timeouts) stays far from overflowing.
    public static let maximum = PolicyDuration(seconds: 3650 * 86400)

    /// `text` as a duration, or nil when it is not one or is longer than `maximum`.
    public static func parse(_ text: String) -> PolicyDuration? {
        let units: [Character: UInt64] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        guard let unit = text.last, let multiplier = units[unit], let amount = UInt64(text.dropLast()), amount > 0 else {
            return nil
        }
        let (seconds, overflow) = amount.multipliedReportingOverflow(by: multiplier)
        guard !overflow, seconds <= maximum.seconds else { return nil }
        return PolicyDuration(seconds: seconds)
    }

    /// In the largest exact unit (`90s`, `30m`, `7d`), as nft writes timeouts: nft refuses some
    /// large counts of a small unit (`235926000s`) that it accepts as days.
    public var description: String {
        for (suffix, size) in [("d", UInt64(86400)), ("h", 3600), ("m", 60)] where seconds % size == 0 && seconds > 0 {
            return "\(seconds / size)\(suffix)"
        }
        return "\(seconds)s"
    }
}

extension Substring {
    package func trimmingCharacters(in set: String) -> String {
        String(drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}
