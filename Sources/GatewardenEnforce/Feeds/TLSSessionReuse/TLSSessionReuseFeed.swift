import Foundation
import GatewardenCore
import GatewardenPolicy

/// The TLS-session-reuse feed: follows nginx's `gatewarden` log and returns the networks whose
/// clients open new TLS sessions and never resume one, for the enforce loop to ban with origin `tls`.
///
///     let feed = TLSSessionReuseFeed(settings: policy.tlsSessionReuse!)
///     // every enforce interval:
///     for prefix in feed.poll(now: Date()) { ban(prefix, for: feed.settings.banFor, origin: .tls) }
///     exporter.update(feed.statistics)
///
/// The log is read from its end when the feed starts (`LogFollower`), each line is parsed
/// (`NginxLogLine`) and judged (`SessionReuseJudge`). The feed neither bans nor knows about observe
/// mode: it says what it would ban, and the loop decides.
public final class TLSSessionReuseFeed {
    public let settings: TLSSessionReuseSettings
    public private(set) var statistics = TLSSessionReuseStatistics()
    private let follower: LogFollower
    private var judge: SessionReuseJudge
    private var newestLineMilliseconds: Int64?

    /// `judgeConfiguration` and `followerLimits` are for tests and benchmarks; by default the policy's
    /// settings decide, with the judge's and follower's built-in bounds.
    public init(settings: TLSSessionReuseSettings, judgeConfiguration: SessionReuseJudge.Configuration? = nil,
                followerLimits: LogFollower.Limits = LogFollower.Limits()) {
        self.settings = settings
        follower = LogFollower(path: settings.log, limits: followerLimits)
        judge = SessionReuseJudge(configuration: judgeConfiguration ?? SessionReuseJudge.Configuration(
            minimumConnections: settings.minConnections, newSessionRatio: settings.newSessionRatio,
            windowSeconds: settings.window.seconds, ipv4Prefix: settings.ipv4Prefix, ipv6Prefix: settings.ipv6Prefix))
    }

    /// Reads what nginx logged since the last poll (up to the follower's per-poll bound) and returns the
    /// networks flagged by it, each once, in the order they were flagged.
    public func poll(now: Date) -> [AddressPrefix] {
        let nowMilliseconds = Int64((now.timeIntervalSince1970 * 1000).rounded(.down))
        judge.advance(toMilliseconds: nowMilliseconds)
        let before = follower.statistics
        var flagged: [NetworkKey] = []
        follower.poll(now: now.timeIntervalSince1970) { bytes in
            statistics.linesRead += 1
            if let network = read(bytes) { flagged.append(network) }
        }
        let after = follower.statistics
        let overLong = after.overLongLines - before.overLongLines
        let partial = after.partialLinesDropped - before.partialLinesDropped
        statistics.linesRead += overLong + partial
        statistics.linesSkipped[.tooLong, default: 0] += overLong
        statistics.linesSkipped[.partial, default: 0] += partial
        statistics.renames = after.renames
        statistics.truncations = after.truncations
        statistics.bytesRead = after.bytesRead
        statistics.isFollowing = after.isFollowing
        statistics.prefixesFlagged += UInt64(flagged.count)
        statistics.trackedPrefixes = judge.trackedNetworks
        statistics.restartsDetected = judge.restartsDetected
        if let newest = newestLineMilliseconds {
            statistics.newestLineTime = Date(timeIntervalSince1970: Double(newest) / 1000)
            statistics.lagSeconds = max(0, Double(nowMilliseconds - newest) / 1000)
        }
        return flagged.map(\.prefix)
    }

    /// Parses and judges one line; the network it flagged, if any.
    private func read(_ bytes: UnsafeRawBufferPointer) -> NetworkKey? {
        let line: NginxLogLine
        do {
            line = try NginxLogLine(parsing: bytes)
        } catch .otherFormat {
            statistics.linesSkipped[.otherFormat, default: 0] += 1
            return nil
        } catch {
            statistics.linesSkipped[.malformed, default: 0] += 1
            return nil
        }
        switch judge.judge(line) {
        case .ignored(let reason):
            statistics.linesSkipped[.init(reason), default: 0] += 1
            if reason != .future { noteTime(line) }
            return nil
        case .counted:
            statistics.connectionsJudged += 1
            noteTime(line)
            return nil
        case .flagged(let network):
            statistics.connectionsJudged += 1
            noteTime(line)
            return network
        }
    }

    private func noteTime(_ line: NginxLogLine) {
        newestLineMilliseconds = max(newestLineMilliseconds ?? .min, line.timeMilliseconds)
    }
}

extension TLSSessionReuseFeed: BanFeed {
    /// Its bans carry origin `tls`.
    public var origin: BanOrigin { .tls }

    public var banFor: Duration { .seconds(Int64(clamping: settings.banFor.seconds)) }

    public func shortestLength(ipv4: Bool) -> Int { ipv4 ? settings.ipv4Prefix : settings.ipv6Prefix }

    public var figures: FeedFigures {
        var figures = FeedFigures()
        figures.linesRead = statistics.linesRead
        figures.linesSkipped = Dictionary(uniqueKeysWithValues: statistics.linesSkipped.map { ($0.key.rawValue, $0.value) })
        figures.connectionsJudged = statistics.connectionsJudged
        figures.prefixesFlagged = statistics.prefixesFlagged
        figures.restartsDetected = statistics.restartsDetected
        figures.lagSeconds = statistics.lagSeconds
        figures.following = statistics.isFollowing
        return figures
    }
}
