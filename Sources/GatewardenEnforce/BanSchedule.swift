import GatewardenPolicy
/// How long the n-th offence of a prefix is banned: `banFor * 2^(n-1)`, capped at `maxBan`, plus a
/// little jitter (at most +10%, never past `maxBan`), as fail2ban's `bantime.increment` does.
/// Offences count while they are younger than `history`.
///
/// The jitter spreads the expiries of bans created in the same interval, so a flood that was banned
/// all at once does not come back all at once. It never shortens a ban.
///
///     let schedule = BanSchedule(banFor: .seconds(1800), maxBan: .seconds(7 * 86400), history: .seconds(30 * 86400))
///     schedule.length(ofOffence: 1)   // 30m ... 33m
///     schedule.length(ofOffence: 3)   // 2h ... 2h12m
///     schedule.length(ofOffence: 99)  // 7d
public struct BanSchedule: Sendable {
    /// The length of a first ban.
    public let banFor: Duration
    /// The longest ban, jitter included.
    public let maxBan: Duration
    /// How long an offence counts towards the next ban's length.
    public let history: Duration
    /// A number in `0..<1` each time it is called; the jitter is this fraction of `maxJitter`.
    /// Injectable so tests are deterministic.
    public let randomFraction: @Sendable () -> Double

    /// The largest jitter, as a fraction of the unjittered length.
    public static let maxJitter = 0.1

    public init(banFor: Duration, maxBan: Duration, history: Duration,
                randomFraction: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.banFor = max(banFor, .zero)
        self.maxBan = max(maxBan, .zero)
        self.history = max(history, .zero)
        self.randomFraction = randomFraction
    }

    /// The schedule of `settings` (`ban_for`, `max_ban`, `history`).
    public init(_ settings: EnforceSettings,
                randomFraction: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.init(banFor: settings.banFor, maxBan: settings.maxBan, history: settings.history,
                  randomFraction: randomFraction)
    }

    /// The unjittered length for the n-th offence (n below 1 counts as a first offence).
    public func baseLength(ofOffence offence: Int) -> Duration {
        var length = min(banFor, maxBan)
        // Double until the cap: at most ~60 steps even for a 1 ns ban, so a huge `offence`
        // neither loops for long nor overflows.
        var doublings = max(offence, 1) - 1
        while doublings > 0 && length > .zero && length < maxBan {
            length = length < maxBan / 2 ? length * 2 : maxBan
            doublings -= 1
        }
        return min(length, maxBan)
    }

    /// The length for the n-th offence, jitter included: in `baseLength ... min(baseLength * 1.1, maxBan)`.
    public func length(ofOffence offence: Int) -> Duration {
        let base = baseLength(ofOffence: offence)
        // A misbehaving random source must not shorten or stretch a ban beyond the bounds.
        let fraction = randomFraction()
        let clamped = fraction.isFinite ? min(max(fraction, 0), 1) : 0
        return min(base + base * (Self.maxJitter * clamped), maxBan)
    }
}
