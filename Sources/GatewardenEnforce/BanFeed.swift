import Foundation
import GatewardenCore

/// A source of ban candidates outside the kernel's own drop state: the nginx TLS-session-reuse
/// log, and later others. The loop polls each once per interval and bans what it returns (in
/// observe mode, records it), with the same cap and allowlist as every other origin, for the feed's
/// own first-ban length (doubled for repeat offences like every other).
public protocol BanFeed: AnyObject {
    /// The origin its bans carry.
    var origin: BanOrigin { get }
    /// A first ban's length for this feed's findings.
    var banFor: Duration { get }
    /// The shortest prefix length it may ban, per family: never wider than the feed was told to judge.
    func shortestLength(ipv4: Bool) -> Int
    /// The prefixes to ban, found since the last poll.
    func poll(now: Date) throws -> [AddressPrefix]
    /// Its figures so far, for metrics.
    var figures: FeedFigures { get }
}

/// What a feed reports about its input, for `gatewarden_<feed>_*` metrics: kept in the enforce
/// statistics file, so the exporter shows them whether the loop runs in `serve` or alone.
public struct FeedFigures: Codable, Sendable, Equatable {
    public var linesRead: UInt64 = 0
    /// Lines skipped, by reason (a fixed set per feed).
    public var linesSkipped: [String: UInt64] = [:]
    public var connectionsJudged: UInt64 = 0
    public var prefixesFlagged: UInt64 = 0
    public var restartsDetected: UInt64 = 0
    /// Age of the newest line read, in seconds; nil before any.
    public var lagSeconds: Double?
    /// Whether the input is open (a missing log is waited for).
    public var following = false

    public init() {}
}
