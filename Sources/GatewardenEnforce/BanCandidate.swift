import GatewardenCore

/// A prefix the loop wants banned and why: what `BanStore.promote` turns into a ban unless one is
/// already in force.
///
///     BanCandidate(prefix: try AddressPrefix("198.51.100.7/32"), origin: .rateSource)
public struct BanCandidate: Hashable, Sendable {
    public var prefix: AddressPrefix
    public var origin: BanOrigin

    public init(prefix: AddressPrefix, origin: BanOrigin) {
        self.prefix = prefix
        self.origin = origin
    }
}
