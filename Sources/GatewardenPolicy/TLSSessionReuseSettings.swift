import GatewardenCore

/// The policy's `tls_session_reuse:` section: where the nginx `gatewarden` log is and when a network
/// counts as one whose clients never resume their TLS sessions (the third seed's signal against bots
/// rotating through residential proxies). Absent from the policy: the feed is off.
///
///     tls_session_reuse: {log: /var/log/nginx/gatewarden.log, min_connections: 15}
///
/// flags a /24 (IPv6: a /64) whose TLS connections within the last 10 minutes number at least 15 and
/// are new sessions in more than 95% of them; the enforce loop bans it for an hour.
public struct TLSSessionReuseSettings: Sendable, Equatable {
    /// The nginx access log in the `gatewarden` format (deploy/nginx/gatewarden.conf).
    public var log: String
    /// Connections a network must open within `window` before its share of new sessions is judged.
    public var minConnections: Int = 15
    /// A network is flagged when more than this share of its connections are new sessions (0 < ratio < 1).
    public var newSessionRatio: Double = 0.95
    /// How far back connections count.
    public var window = PolicyDuration(seconds: 600)
    /// The IPv4 network judged as one (a /24: one residential block, the seed's unit).
    public var ipv4Prefix: Int = 24
    /// The IPv6 network judged as one.
    public var ipv6Prefix: Int = 64
    /// How long a flagged network stays banned.
    public var banFor = PolicyDuration(seconds: 3600)

    public init(log: String) {
        self.log = log
    }

    /// What each key accepts; the parser and the docs both say these.
    public static let minConnectionsRange = 1...1_000_000
    public static let ipv4PrefixRange = 8...32
    public static let ipv6PrefixRange = 32...64
    /// A window shorter than a minute holds too few connections to judge; longer than a day, the
    /// evidence outlives the sessions it is about (a day is the example server's session timeout).
    public static let windowRange: ClosedRange<UInt64> = 60...86400
}
