import Foundation

/// Why a prefix is banned. Every ban has exactly one origin per entry in the ban store; `bans list`
/// prints it and `gatewarden_bans{origin}` counts by it.
///
///     BanOrigin(rawValue: "rate_source")   // .rateSource
public enum BanOrigin: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    /// A source that kept exceeding its per-source XDP rate (drops in `violations` enforce intervals).
    case rateSource = "rate_source"
    /// A subnet (/24, IPv6 at the policy's prefix) that kept exceeding its per-subnet XDP rate.
    case rateSubnet = "rate_subnet"
    /// A subnet nftables' escalation rule caught opening connections over its limit.
    case escalation
    /// A subnet whose clients open new TLS sessions and never resume one (the nginx log feed).
    case tls
    /// An operator's `bans add`.
    case manual
    /// The policy's `blocklist`: lasts exactly while the policy lists it.
    case policy

    public var description: String { rawValue }

    /// Whether the enforce loop decides this ban (and may lengthen it for repeat offenders),
    /// as opposed to an operator or the policy.
    public var isEnforced: Bool {
        switch self {
        case .rateSource, .rateSubnet, .escalation, .tls: return true
        case .manual, .policy: return false
        }
    }
}

/// A kernel layer a ban is applied in.
public enum BanLayer: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    /// The XDP program's blocklist: dropped at the driver, every port.
    case xdp
    /// The nftables table's ban sets: dropped in the netfilter ingress path.
    case nft

    public var description: String { rawValue }
}

/// One ban: a prefix, why, and for how long, in wall-clock time so it survives reboots.
///
///     let ban = Ban(prefix: try AddressPrefix("203.0.113.0/24"), origin: .tls,
///                   created: now, expires: now.addingTimeInterval(3600))
public struct Ban: Sendable, Equatable, Hashable {
    public var prefix: AddressPrefix
    public var origin: BanOrigin
    public var created: Date
    /// When the ban ends; nil: until removed.
    public var expires: Date?
    /// Which offence of this prefix the ban is for (1 for a first ban), for escalating lengths.
    public var offence: Int

    public init(prefix: AddressPrefix, origin: BanOrigin, created: Date, expires: Date?, offence: Int = 1) {
        self.prefix = prefix
        self.origin = origin
        self.created = created
        self.expires = expires
        self.offence = offence
    }

    /// Whether the ban is in force at `date`.
    public func isActive(at date: Date) -> Bool {
        expires.map { $0 > date } ?? true
    }
}
