import GatewardenCore

/// The policy's `enforce:` section: how often the loop looks, what makes a violator, and how long
/// bans last. Every key is optional in the policy; a missing one takes its value from `seedDefaults`.
///
///     enforce: {interval: 10s, violations: 5, window: 60s, ban_for: 30m, max_ban: 7d, history: 30d, max_new_bans: 1000}
///
///     var settings = EnforceSettings.seedDefaults
///     settings.banFor = .seconds(3600)
///     settings.windowIntervals   // 6: a violator needs drops in 5 of the last 6 intervals
public struct EnforceSettings: Sendable, Equatable {
    /// How often the loop reads the kernel's drop state (`interval`).
    public var interval: Duration
    /// In how many distinct intervals a key must have had drops to be banned (`violations`).
    public var violations: Int
    /// How far back those intervals may lie (`window`).
    public var window: Duration
    /// The length of a first ban (`ban_for`); the n-th offence gets `banFor * 2^(n-1)`.
    public var banFor: Duration
    /// The longest ban a repeat offender gets (`max_ban`).
    public var maxBan: Duration
    /// How long offences are remembered for escalating ban lengths (`history`).
    public var history: Duration
    /// The most new bans one interval may create (`max_new_bans`), so a spoofed flood of
    /// sources cannot make the loop ban the internet.
    public var maxNewBansPerInterval: Int

    public init(interval: Duration, violations: Int, window: Duration, banFor: Duration, maxBan: Duration,
                history: Duration, maxNewBansPerInterval: Int) {
        self.interval = interval
        self.violations = violations
        self.window = window
        self.banFor = banFor
        self.maxBan = maxBan
        self.history = history
        self.maxNewBansPerInterval = maxNewBansPerInterval
    }

    /// The most intervals a violation count may span: the tracker keeps the last `violations` intervals of each key.
    public static let maximumViolations = 64

    /// The seed's values, used for every key the policy leaves out.
    public static let seedDefaults = EnforceSettings(
        interval: .seconds(10), violations: 5, window: .seconds(60), banFor: .seconds(30 * 60),
        maxBan: .seconds(7 * 86400), history: .seconds(30 * 86400), maxNewBansPerInterval: 1000)

    /// How many intervals fit in the window (at least one): the span `ViolationTracker` counts in.
    /// 60s of 10s intervals is 6.
    public var windowIntervals: Int {
        guard interval > .zero else { return 1 }
        let ratio = window / interval
        guard ratio.isFinite, ratio >= 1 else { return 1 }
        return Int(min(ratio, Double(Int32.max)))
    }

    /// What makes these settings useless or contradictory, one sentence per problem naming the
    /// policy keys; empty when they are consistent. The policy parser reports these with the file
    /// position of the `enforce:` section.
    public var problems: [String] {
        var problems: [String] = []
        if interval <= .zero { problems.append("enforce.interval must be longer than zero") }
        if violations < 1 { problems.append("enforce.violations must be at least 1") }
        if violations > Self.maximumViolations {
            problems.append("enforce.violations must be at most \(Self.maximumViolations)")
        }
        if window < interval {
            problems.append("enforce.window (\(window.policyText)) is shorter than enforce.interval (\(interval.policyText))")
        } else if violations > windowIntervals {
            problems.append("enforce.violations (\(violations)) can never be reached: enforce.window (\(window.policyText)) "
                + "holds only \(windowIntervals) intervals of \(interval.policyText)")
        }
        if banFor <= .zero { problems.append("enforce.ban_for must be longer than zero") }
        if maxBan < banFor {
            problems.append("enforce.max_ban (\(maxBan.policyText)) is shorter than enforce.ban_for (\(banFor.policyText))")
        }
        if history < .zero { problems.append("enforce.history must not be negative") }
        if maxNewBansPerInterval < 1 { problems.append("enforce.max_new_bans must be at least 1") }
        return problems
    }
}
