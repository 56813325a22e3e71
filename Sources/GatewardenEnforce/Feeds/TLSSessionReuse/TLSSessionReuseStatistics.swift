import Foundation

/// What the TLS-session-reuse feed has read and decided, for the exporter (counters only grow;
/// gauges say the state at the last poll).
///
///     let stats = feed.statistics
///     stats.linesSkipped[.otherFormat]   // lines of another log format
///     stats.lagSeconds                   // age of the newest line at the last poll
public struct TLSSessionReuseStatistics: Sendable, Equatable {
    /// Why a line read from the log did not count as a connection.
    public enum SkipReason: String, Sendable, CaseIterable {
        /// Not a `gw1` line: another format, or another version of this one.
        case otherFormat = "other_format"
        /// A `gw1` line whose fields are not what the format writes.
        case malformed
        /// Longer than the follower's line limit (skipped without being buffered).
        case tooLong = "too_long"
        /// An unterminated line end dropped at a truncation or rotation.
        case partial
        case notTLS = "not_tls"
        case repeatRequest = "repeat_request"
        case stale
        case future
        case untracked
        case restartDiscount = "restart_discount"

        init(_ reason: SessionReuseJudge.Reason) {
            switch reason {
            case .notTLS: self = .notTLS
            case .repeatRequest: self = .repeatRequest
            case .stale: self = .stale
            case .future: self = .future
            case .untracked: self = .untracked
            case .restartDiscount: self = .restartDiscount
            }
        }
    }

    /// Lines read from the log (complete ones, over-long ones and dropped partial ones).
    public var linesRead: UInt64 = 0
    /// Lines that did not count as a connection, by reason (every reason present, from 0).
    public var linesSkipped: [SkipReason: UInt64] = Dictionary(uniqueKeysWithValues: SkipReason.allCases.map { ($0, 0) })
    /// Connections counted as evidence (first requests over TLS, in the window).
    public var connectionsJudged: UInt64 = 0
    /// Networks flagged (each time one crosses the threshold).
    public var prefixesFlagged: UInt64 = 0
    /// Networks with connections in the window (gauge).
    public var trackedPrefixes: Int = 0
    /// Restarts of nginx seen in the log.
    public var restartsDetected: UInt64 = 0
    /// Log rotations seen: renames and truncations (copytruncate).
    public var renames: UInt64 = 0
    public var truncations: UInt64 = 0
    /// Bytes read from the log.
    public var bytesRead: UInt64 = 0
    /// Whether the log file is open (false: waiting for it to appear).
    public var isFollowing = false
    /// When the newest line read was written (its `$msec`); nil before the first line.
    public var newestLineTime: Date?
    /// How old the newest line was at the last poll, in seconds (gauge; nil before the first line):
    /// grows when nginx logs nothing or when the feed falls behind.
    public var lagSeconds: Double?

    public init() {}

    /// All lines skipped, whatever the reason.
    public var linesSkippedTotal: UInt64 { linesSkipped.values.reduce(0, +) }
}
