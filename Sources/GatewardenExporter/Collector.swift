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
        var families = constantFamilies
        for collector in collectors {
            let start = ContinuousClock.now
            let succeeded: Bool
            do {
                families += try collector.collect()
                succeeded = true
            } catch {
                succeeded = false
                FileHandle.standardError.write(Data("gatewarden: collector \(collector.name): \(error)\n".utf8))
            }
            let elapsed = ContinuousClock.now - start
            up.add(["collector": collector.name], succeeded ? 1 : 0)
            duration.add(["collector": collector.name],
                         Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        }
        return families + [up, duration]
    }
}
