import GatewardenCore

// Duration, the unit of `EnforceSettings`, to and from the policy's durations and wall-clock seconds.
extension Duration {
    /// A policy duration (whole seconds) as a `Duration`, for building `EnforceSettings` from a policy.
    public init(_ policyDuration: PolicyDuration) {
        self = .seconds(Int64(clamping: policyDuration.seconds))
    }

    /// Seconds as a `Double`, for wall-clock arithmetic on `Date`s.
    public var timeInterval: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// The duration the way the policy writes it (`30m`, `7d`), for messages.
    public var policyText: String {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds == 0 else { return "\(self)" }
        return PolicyDuration(seconds: UInt64(seconds)).description
    }
}
