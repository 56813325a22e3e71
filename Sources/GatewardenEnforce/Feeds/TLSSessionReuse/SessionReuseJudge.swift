/// Decides, connection by connection, which networks open new TLS sessions and (almost) never resume
/// one: the third seed's signal against bots rotating through residential proxies, whose every
/// connection comes from a new address with a full handshake, where browsers and apps resume.
///
///     var judge = SessionReuseJudge(configuration: .init(minimumConnections: 15, newSessionRatio: 0.95,
///                                                        windowSeconds: 600, ipv4Prefix: 24, ipv6Prefix: 64))
///     judge.advance(toMilliseconds: now)
///     if case .flagged(let network) = judge.judge(line) { ban(network.prefix) }
///
/// A network is flagged when its TLS connections within the window number at least
/// `minimumConnections` and more than `newSessionRatio` of them are new sessions. A connection is the
/// first request logged on it (`$connection_requests` 1); plain HTTP says nothing either way.
///
/// **Memory.** Counts are kept per network (not per address), in `bucketCount` time buckets that
/// together span the window: a bucket that falls out of the window is subtracted and forgotten, so a
/// network that went quiet costs nothing after one window. At most `maximumTrackedNetworks` networks
/// are tracked at once; connections of further networks are not judged until the window frees room
/// (counted as `untracked`).
///
/// **Flagged networks** start from nothing: their counts are dropped, so a network is flagged again
/// only on fresh evidence (after its ban, it has to earn another).
///
/// **nginx restarts.** A restart empties nginx's session cache, so every client's first connection
/// after it is a full handshake by necessity, whatever the client: counting it would make networks of
/// returning browsers look like bots. A restart shows in the log as `$connection` starting again from
/// 1 (a reload keeps counting): a first request whose `$connection` is below half the highest seen.
/// (Lines are written when a request ends, so a slow request of an older connection can log after
/// newer ones; below half of the highest is far beyond such reordering once a server has run a while,
/// and a false alarm only discounts evidence.) For one window after a restart, the first new-session
/// connection of each address is not counted; its later connections, and any resumed one, are. The
/// set of addresses seen since the restart is bounded too: once full, new sessions of addresses not in
/// it are not counted until the window has passed (missing a bot for a window is the safe mistake).
public struct SessionReuseJudge {
    /// What the judge counts and when it flags.
    public struct Configuration: Sendable, Equatable {
        public var minimumConnections: Int
        public var newSessionRatio: Double
        public var windowSeconds: UInt64
        public var ipv4Prefix: Int
        public var ipv6Prefix: Int
        public var maximumTrackedNetworks = 262_144
        /// Addresses remembered after a restart, to discount each one's first connection.
        public var maximumAddressesAfterRestart = 262_144
        public var bucketCount = 10
        /// How far ahead of `now` a line may be dated (clocks differ a little; a line from far in the
        /// future would otherwise push every bucket out of the window).
        public var futureToleranceMilliseconds: Int64 = 60_000

        public init(minimumConnections: Int, newSessionRatio: Double, windowSeconds: UInt64, ipv4Prefix: Int, ipv6Prefix: Int) {
            self.minimumConnections = minimumConnections
            self.newSessionRatio = newSessionRatio
            self.windowSeconds = windowSeconds
            self.ipv4Prefix = ipv4Prefix
            self.ipv6Prefix = ipv6Prefix
        }
    }

    /// What became of one line.
    public enum Verdict: Equatable, Sendable {
        /// Counted for its network, which is not (yet) flagged.
        case counted
        /// Counted, and its network crossed the threshold.
        case flagged(NetworkKey)
        /// Not counted, and why.
        case ignored(Reason)
    }

    /// Why a line is not counted.
    public enum Reason: String, Sendable, CaseIterable {
        /// Plain HTTP: says nothing about resumption.
        case notTLS = "not_tls"
        /// A later request of a connection already counted (keep-alive, HTTP/2 streams).
        case repeatRequest = "repeat_request"
        /// Dated before the window.
        case stale
        /// Dated too far after `now`.
        case future
        /// Its network would exceed `maximumTrackedNetworks`.
        case untracked
        /// A new session that a restart of nginx forced (see above).
        case restartDiscount = "restart_discount"
    }

    /// New and resumed connections of one network in one span of time.
    struct Counts {
        var new: UInt32 = 0
        var resumed: UInt32 = 0
        var total: UInt32 { new &+ resumed }
    }

    /// One span of the window: which span (`index` = time / width) and its counts per network.
    struct Bucket {
        var index: Int64
        var counts: [NetworkKey: Counts] = [:]
    }

    public let configuration: Configuration
    private let bucketMilliseconds: Int64
    private var totals: [NetworkKey: Counts] = [:]
    private var buckets: [Bucket]
    /// The newest bucket index: the judge's clock, from `now` and from the lines.
    private var clock: Int64 = .min
    private var nowMilliseconds: Int64 = .min
    private var restarts = NginxRestartWatch()
    private var restartGraceEnds: Int64 = .min
    private var seenSinceRestart: Set<ClientAddress> = []

    /// Restarts of nginx seen in the log.
    public private(set) var restartsDetected: UInt64 = 0

    /// Networks with counts in the window.
    public var trackedNetworks: Int { totals.count }

    public init(configuration: Configuration) {
        self.configuration = configuration
        let buckets = max(configuration.bucketCount, 1)
        bucketMilliseconds = max(Int64(configuration.windowSeconds) * 1000 / Int64(buckets), 1)
        self.buckets = (0..<buckets).map { _ in Bucket(index: .min) }
    }

    /// Moves the clock to `now`: buckets that fell out of the window are forgotten even if no line
    /// comes, and lines dated too far after `now` are refused.
    public mutating func advance(toMilliseconds now: Int64) {
        nowMilliseconds = max(nowMilliseconds, now)
        moveClock(to: now / bucketMilliseconds)
        if now >= restartGraceEnds && !seenSinceRestart.isEmpty { seenSinceRestart = [] }
    }

    /// Counts `line` for its network, if it is evidence; says whether the network is now flagged.
    public mutating func judge(_ line: NginxLogLine) -> Verdict {
        if nowMilliseconds != .min && line.timeMilliseconds > nowMilliseconds &+ configuration.futureToleranceMilliseconds {
            return .ignored(.future)
        }
        guard line.isFirstRequest else { return .ignored(.repeatRequest) }
        // Every first request tells the connection counter, plain HTTP too; later requests of a
        // connection carry its old number, however long it has been open.
        if restarts.isRestart(connection: line.connection) {
            restartsDetected += 1
            restartGraceEnds = line.timeMilliseconds &+ Int64(configuration.windowSeconds) * 1000
            seenSinceRestart = []
        }
        if line.session == .notTLS { return .ignored(.notTLS) }
        let index = line.timeMilliseconds / bucketMilliseconds
        if index > clock { moveClock(to: index) }
        guard index > clock - Int64(buckets.count) else { return .ignored(.stale) }
        if line.timeMilliseconds < restartGraceEnds && isForcedBySomeRestart(line) { return .ignored(.restartDiscount) }

        let network = line.address.network(ipv4Prefix: configuration.ipv4Prefix, ipv6Prefix: configuration.ipv6Prefix)
        guard totals[network] != nil || totals.count < configuration.maximumTrackedNetworks else { return .ignored(.untracked) }
        let slot = self.slot(of: index)
        let resumed = line.session == .resumed
        buckets[slot].counts[network, default: Counts()].add(resumed: resumed)
        let total = totals[network, default: Counts()].adding(resumed: resumed)
        guard Int(total.total) >= configuration.minimumConnections,
              Double(total.new) > configuration.newSessionRatio * Double(total.total) else { return .counted }
        forget(network)
        return .flagged(network)
    }

    /// Whether `line` is the first connection since the restart of an address that has not been seen
    /// since, with a new session (the one the restart forced).
    private mutating func isForcedBySomeRestart(_ line: NginxLogLine) -> Bool {
        if seenSinceRestart.contains(line.address) { return false }
        guard seenSinceRestart.count < configuration.maximumAddressesAfterRestart else {
            return line.session == .new
        }
        seenSinceRestart.insert(line.address)
        return line.session == .new
    }

    private mutating func moveClock(to index: Int64) {
        guard index > clock else { return }
        let count = Int64(buckets.count)
        // Only the buckets between the old clock and the new one change; all of them past a window.
        let first = clock == .min || index - clock >= count ? index - count + 1 : clock + 1
        for next in first...index {
            let slot = self.slot(of: next)
            expire(slot)
            buckets[slot].index = next
        }
        clock = index
    }

    /// Where bucket `index` lives in the ring.
    private func slot(of index: Int64) -> Int {
        let count = Int64(buckets.count)
        return Int((index % count + count) % count)
    }

    private mutating func expire(_ slot: Int) {
        for (network, counts) in buckets[slot].counts {
            guard var total = totals[network] else { continue }
            total.new -= min(total.new, counts.new)
            total.resumed -= min(total.resumed, counts.resumed)
            totals[network] = total.total == 0 ? nil : total
        }
        buckets[slot].counts.removeAll(keepingCapacity: false)
    }

    private mutating func forget(_ network: NetworkKey) {
        totals[network] = nil
        for slot in buckets.indices { buckets[slot].counts[network] = nil }
    }
}

extension SessionReuseJudge.Counts {
    mutating func add(resumed: Bool) {
        if resumed { self.resumed &+= 1 } else { new &+= 1 }
    }

    /// Adds one connection and returns the new counts.
    mutating func adding(resumed: Bool) -> Self {
        add(resumed: resumed)
        return self
    }
}

/// Tells a restart of nginx from the log: `$connection` is one counter for all workers that a reload
/// keeps and a restart starts again from 1. Lines are logged when requests end, so connection numbers
/// arrive a little out of order; a first request below half the highest number seen is a restart.
struct NginxRestartWatch {
    private var highest: UInt64 = 0

    /// Whether `connection`, a connection's first request, shows that nginx restarted.
    mutating func isRestart(connection: UInt64) -> Bool {
        defer { highest = max(highest, connection) }
        guard connection < highest / 2 else { return false }
        highest = connection
        return true
    }
}
