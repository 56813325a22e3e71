import Foundation

/// One source of metrics, read live at each scrape.
///
/// Like node_exporter's collectors: each reads one thing, and a failure is reported as
/// `gatewarden_up{collector="<name>"} 0` while the other collectors still answer.
public protocol Collector: Sendable {
    /// The `collector` label of `gatewarden_up` and `gatewarden_scrape_duration_seconds`.
    var name: String { get }
    /// Reads the source and returns its families.
    func collect() throws -> [MetricFamily]
}

/// Runs the registered collectors for one scrape and adds each one's health and duration.
///
/// Each collector runs on its own thread and gets `timeout`: one that has not returned by then is
/// reported down for this scrape while the others' families are served. It is not started again
/// while that collection still runs (later scrapes report it down at once), so a collector that
/// hangs holds one thread, never one per scrape.
public struct CollectorRegistry: Sendable {
    public let collectors: [any Collector]
    /// Families that need no collector health of their own (build info).
    public let constantFamilies: [MetricFamily]
    /// How long a scrape waits for the collectors (`--collector.timeout`).
    public let timeout: Duration

    public static let defaultTimeout: Duration = .seconds(5)

    public init(collectors: [any Collector], constantFamilies: [MetricFamily] = [], timeout: Duration = defaultTimeout) {
        self.collectors = collectors
        self.constantFamilies = constantFamilies
        self.timeout = timeout
        runners = collectors.map(CollectorRunner.init)
    }

    private let runners: [CollectorRunner]
    private let flight = SingleFlight<[MetricFamily]>()

    /// Collects once for all scrapes that arrive while a collection runs.
    public func scrape() -> [MetricFamily] {
        flight.run(collectAll)
    }

    private func collectAll() -> [MetricFamily] {
        var up = MetricFamily(name: "gatewarden_up",
                              help: "Whether the collector's last scrape succeeded (1) or failed (0).", type: .gauge)
        var duration = MetricFamily(name: "gatewarden_scrape_duration_seconds",
                                    help: "How long the collector took in the last scrape.", type: .gauge)
        // Collectors read different kernel objects: run them side by side, so a scrape costs the
        // slowest one (usually the nftables listing), not the sum.
        let started = ContinuousClock.now
        let finished = DispatchGroup()
        let results = CollectedResults(count: runners.count)
        for (index, runner) in runners.enumerated() {
            runner.start(finished) { outcome, elapsed in results.store(index, outcome, elapsed) }
        }
        _ = finished.wait(timeout: .now() + .nanoseconds(Int(min(timeout.inSeconds * 1e9, 1e15))))
        var families = constantFamilies
        for (index, runner) in runners.enumerated() {
            let (outcome, elapsed) = results.value(index) ?? runner.unfinished(since: started, timeout: timeout)
            switch outcome {
            case .success(let collected):
                families += collected
            case .failure(let error):
                FileHandle.standardError.write(Data("gatewarden: collector \(runner.collector.name): \(error)\n".utf8))
            }
            up.add(["collector": runner.collector.name], (try? outcome.get()) != nil ? 1 : 0)
            duration.add(["collector": runner.collector.name], elapsed.inSeconds)
        }
        return families + [up, duration]
    }
}

/// Runs one collector, at most one collection at a time.
private final class CollectorRunner: @unchecked Sendable {
    let collector: any Collector
    private let lock = NSLock()
    /// When the collection still running started; nil when none runs.
    private var runningSince: ContinuousClock.Instant?

    init(_ collector: any Collector) {
        self.collector = collector
    }

    struct TimedOut: Error, CustomStringConvertible {
        let timeout: Duration
        let stillRunningFromEarlier: Bool
        var description: String {
            stillRunningFromEarlier
                ? "an earlier collection has not returned yet; not started again until it does"
                : "no answer within \(timeout) (--collector.timeout); reported down until it returns"
        }
    }

    /// Starts a collection on a thread of its own, unless the previous one still runs; `report`
    /// gets its outcome when it returns, however late.
    func start(_ group: DispatchGroup, report: @escaping @Sendable (Result<[MetricFamily], Error>, Duration) -> Void) {
        let start = ContinuousClock.now
        let idle = lock.withLock { () -> Bool in
            guard runningSince == nil else { return false }
            runningSince = start
            return true
        }
        guard idle else { return }
        group.enter()
        let thread = Thread { [self] in
            let outcome = Result { try collector.collect() }
            report(outcome, ContinuousClock.now - start)
            lock.withLock { runningSince = nil }
            group.leave()
        }
        thread.name = "gatewarden-collector-\(collector.name)"
        thread.start()
    }

    /// The outcome of a collection that did not report within `timeout` of `scrapeStart`.
    func unfinished(since scrapeStart: ContinuousClock.Instant, timeout: Duration) -> (Result<[MetricFamily], Error>, Duration) {
        let since = lock.withLock { runningSince } ?? scrapeStart
        return (.failure(TimedOut(timeout: timeout, stillRunningFromEarlier: since < scrapeStart)), ContinuousClock.now - since)
    }
}

/// Per-collector outcomes written from concurrent workers.
private final class CollectedResults: @unchecked Sendable {
    private let lock = NSLock()
    private var outcomes: [(Result<[MetricFamily], Error>, Duration)?]

    init(count: Int) {
        outcomes = Array(repeating: nil, count: count)
    }

    func store(_ index: Int, _ outcome: Result<[MetricFamily], Error>, _ elapsed: Duration) {
        lock.withLock { outcomes[index] = (outcome, elapsed) }
    }

    func value(_ index: Int) -> (Result<[MetricFamily], Error>, Duration)? {
        lock.withLock { outcomes[index] }
    }
}
