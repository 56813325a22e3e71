import Foundation
import GatewardenCore
import GatewardenServe

/// The enforce loop's metrics for the exporter: bans in force by layer and origin (counted in the
/// ban store, never by listing the kernel's sets), and what the loop did, read from the statistics
/// it writes after every interval, whether it runs inside `serve` or alone.
///
/// Without a store or statistics (enforce never ran for this namespace) it reports no samples.
public struct EnforceCollector: Collector {
    public let name = "enforce"
    public let stateDirectory: String
    private let opened: OpenedStore

    /// `store`: the loop's own, when it runs in this process; otherwise the collector opens the
    /// namespace's store once it exists and keeps it open.
    public init(stateDirectory: String, store: BanStore? = nil) {
        self.stateDirectory = stateDirectory
        self.opened = OpenedStore(store)
    }

    /// The store, opened at most once and kept (a scrape never opens, migrates and closes a file).
    private final class OpenedStore: @unchecked Sendable {
        private let lock = NSLock()
        private var store: BanStore?

        init(_ store: BanStore?) { self.store = store }

        func get(directory: String) throws -> BanStore? {
            try lock.withLock {
                if let store { return store }
                guard FileManager.default.fileExists(atPath: "\(directory)/\(BanStore.fileName)") else { return nil }
                store = try BanStore(directory: directory)
                return store
            }
        }
    }

    public func collect() throws -> [MetricFamily] {
        var families: [MetricFamily] = []
        var bans = MetricFamily(name: "gatewarden_bans", help: "Bans in force, by kernel layer and origin (from the ban store).", type: .gauge)
        var observed = MetricFamily(name: "gatewarden_enforce_observed_bans",
                                    help: "Bans observe mode recorded and did not apply, by origin.", type: .gauge)
        if let store = try opened.get(directory: stateDirectory) {
            let counts = try store.counts(at: Date())
            for origin in BanOrigin.allCases where origin != .policy {
                let count = counts[origin] ?? (applied: 0, observed: 0)
                for layer in BanLayer.allCases { bans.add(["layer": layer.rawValue, "origin": origin.rawValue], Double(count.applied)) }
                observed.add(["origin": origin.rawValue], Double(count.observed))
            }
        }
        families += [bans, observed]
        guard let statistics = EnforceStatistics.read(fromDirectory: stateDirectory) else { return families }

        var promotions = MetricFamily(name: "gatewarden_enforce_promotions_total",
                                      help: "Violators the loop banned, by origin (observe mode: recorded only, action=observe).", type: .counter)
        for origin in BanOrigin.allCases where origin.isEnforced {
            promotions.add(["origin": origin.rawValue, "action": "ban"], Double(statistics.promotions[origin.rawValue] ?? 0))
            promotions.add(["origin": origin.rawValue, "action": "observe"], Double(statistics.observedPromotions[origin.rawValue] ?? 0))
        }
        var repairs = MetricFamily(name: "gatewarden_enforce_repairs_total",
                                   help: "What the loop put back after another tool removed it: table, xdp, bans_xdp, bans_nft.", type: .counter)
        for what in ["table", "xdp", "bans_xdp", "bans_nft"] {
            repairs.add(["what": what], Double(statistics.repairs[what] ?? 0))
        }
        func single(_ name: String, _ help: String, _ type: MetricFamily.Kind, _ value: Double) -> MetricFamily {
            var family = MetricFamily(name: name, help: help, type: type)
            family.add([:], value)
            return family
        }
        families += [
            promotions, repairs,
            single("gatewarden_enforce_expiries_total", "Bans that ran out.", .counter, Double(statistics.expiries)),
            single("gatewarden_enforce_cap_hits_total", "Intervals with more violators than enforce.max_new_bans allows.",
                   .counter, Double(statistics.capHits)),
            single("gatewarden_enforce_deferred_total", "Violators left for a later interval by the cap.", .counter,
                   Double(statistics.deferred)),
            single("gatewarden_enforce_untracked_total", "Offenders the violation trackers were too full to follow.", .counter,
                   Double(statistics.untracked)),
            single("gatewarden_enforce_unverified_total",
                   "Violators not banned: sources without a completed handshake, subnets without banned sources (spoofing).",
                   .counter, Double(statistics.unverified)),
            single("gatewarden_enforce_failures_total", "Intervals that failed in part (the error is logged).", .counter,
                   Double(statistics.failures)),
            single("gatewarden_enforce_last_success_timestamp_seconds", "When an interval last completed without error.",
                   .gauge, statistics.lastSuccessUnixSeconds),
            single("gatewarden_enforce_interval_duration_seconds", "How long the last interval took.", .gauge,
                   statistics.lastDurationSeconds),
            single("gatewarden_enforce_observing", "1 when the loop records bans without applying them (observe mode).",
                   .gauge, statistics.observing ? 1 : 0),
        ]
        families += Self.feedFamilies(statistics.feeds)
        return families
    }

    /// `gatewarden_<origin>_feed_*` for each feed the loop ran (today `tls`).
    static func feedFamilies(_ feeds: [String: FeedFigures]) -> [MetricFamily] {
        var lines = MetricFamily(name: "gatewarden_feed_lines_total", help: "Log lines a feed read.", type: .counter)
        var skipped = MetricFamily(name: "gatewarden_feed_lines_skipped_total",
                                   help: "Log lines a feed skipped, by reason (other formats, garbage, too long, not TLS, ...).",
                                   type: .counter)
        var judged = MetricFamily(name: "gatewarden_feed_connections_judged_total",
                                  help: "Connections a feed counted as evidence (first requests of TLS connections).", type: .counter)
        var flagged = MetricFamily(name: "gatewarden_feed_prefixes_flagged_total", help: "Networks a feed found and asked to ban.",
                                   type: .counter)
        var restarts = MetricFamily(name: "gatewarden_feed_restarts_detected_total",
                                    help: "Web server restarts a feed saw (connection numbers starting again).", type: .counter)
        var lag = MetricFamily(name: "gatewarden_feed_lag_seconds",
                               help: "Age of the newest line a feed read: grows when the log stops moving.", type: .gauge)
        var following = MetricFamily(name: "gatewarden_feed_following", help: "1 while the feed's log is open.", type: .gauge)
        for (feed, figures) in feeds.sorted(by: { $0.key < $1.key }) {
            lines.add(["feed": feed], Double(figures.linesRead))
            for (reason, count) in figures.linesSkipped.sorted(by: { $0.key < $1.key }) {
                skipped.add(["feed": feed, "reason": reason], Double(count))
            }
            judged.add(["feed": feed], Double(figures.connectionsJudged))
            flagged.add(["feed": feed], Double(figures.prefixesFlagged))
            restarts.add(["feed": feed], Double(figures.restartsDetected))
            if let seconds = figures.lagSeconds { lag.add(["feed": feed], seconds) }
            following.add(["feed": feed], figures.following ? 1 : 0)
        }
        return [lines, skipped, judged, flagged, restarts, lag, following]
    }
}
