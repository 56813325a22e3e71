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
public struct CollectorRegistry: Sendable {
    public let collectors: [any Collector]
    /// Families that need no collector health of their own (build info).
    public let constantFamilies: [MetricFamily]

    public init(collectors: [any Collector], constantFamilies: [MetricFamily] = []) {
        self.collectors = collectors
        self.constantFamilies = constantFamilies
    }

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
        let results = CollectedResults(count: collectors.count)
        DispatchQueue.concurrentPerform(iterations: collectors.count) { index in
            let collector = collectors[index]
            let start = ContinuousClock.now
            let outcome: Result<[MetricFamily], Error> = Result { try collector.collect() }
            results.store(index, outcome, ContinuousClock.now - start)
        }
        var families = constantFamilies
        for (index, collector) in collectors.enumerated() {
            let (outcome, elapsed) = results.value(index)
            switch outcome {
            case .success(let collected):
                families += collected
            case .failure(let error):
                FileHandle.standardError.write(Data("gatewarden: collector \(collector.name): \(error)\n".utf8))
            }
            up.add(["collector": collector.name], (try? outcome.get()) != nil ? 1 : 0)
            duration.add(["collector": collector.name],
                         Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        }
        return families + [up, duration]
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

    func value(_ index: Int) -> (Result<[MetricFamily], Error>, Duration) {
        lock.withLock { outcomes[index]! }
    }
}
