import Foundation
import Testing
@testable import GatewardenServe

private struct FixedCollector: Collector {
    let name: String
    let fails: Bool

    struct Broken: Error {}

    func collect() throws -> [MetricFamily] {
        if fails { throw Broken() }
        var family = MetricFamily(name: "gatewarden_test_\(name)", help: "test", type: .gauge)
        family.add([:], 1)
        return [family]
    }
}

@Suite("Collector registry")
struct CollectorRegistryTests {
    @Test("a failing collector reports up 0 while the others still answer")
    func failureIsolation() {
        let registry = CollectorRegistry(collectors: [
            FixedCollector(name: "good", fails: false),
            FixedCollector(name: "bad", fails: true),
        ])
        let families = registry.scrape()
        let up = families.first { $0.name == "gatewarden_up" }
        #expect(up?.samples == [
            .init(labels: [("collector", "good")], value: 1),
            .init(labels: [("collector", "bad")], value: 0),
        ])
        #expect(families.contains { $0.name == "gatewarden_test_good" })
        let durations = families.first { $0.name == "gatewarden_scrape_duration_seconds" }
        #expect(durations?.samples.count == 2)
        #expect(durations?.samples.allSatisfy { $0.value >= 0 } == true)
    }

    @Test("a collector that hangs is reported down within the timeout, the others served, and never run twice at once")
    func hungCollector() {
        let hung = GatedCollector(name: "x")
        defer { hung.release() }
        let registry = CollectorRegistry(collectors: [FixedCollector(name: "good", fails: false), hung],
                                         timeout: .milliseconds(300))
        func scrapeWithin(_ seconds: Double) -> [MetricFamily]? {
            let done = DispatchSemaphore(value: 0)
            let result = ScrapeResult()
            Thread { // not the global queue: parallel tests can hold its worker threads past the wait
                result.families = registry.scrape()
                done.signal()
            }.start()
            return done.wait(timeout: .now() + seconds) == .success ? result.families : nil
        }
        func up(_ families: [MetricFamily], _ collector: String) -> Double? {
            families.first { $0.name == "gatewarden_up" }?.samples.first { $0.labels.contains { $0 == ("collector", collector) } }?.value
        }

        for _ in 0..<3 {
            guard let families = scrapeWithin(5) else {
                Issue.record("the scrape waited for the hung collector")
                return
            }
            #expect(up(families, "x") == 0)
            #expect(up(families, "good") == 1)
            #expect(families.contains { $0.name == "gatewarden_test_good" })
        }
        // Later scrapes did not start another collection behind the stuck one.
        #expect(hung.entries == 1)

        hung.release()
        #expect(eventually(within: 5) { scrapeWithin(5).flatMap { up($0, "x") } == 1 })
    }

    @Test("no metric name appears twice in one scrape")
    func noDuplicateFamilies() {
        let registry = CollectorRegistry(collectors: [FixedCollector(name: "a", fails: false)],
                                         constantFamilies: [BuildInfo.family])
        let names = registry.scrape().map(\.name)
        #expect(Set(names).count == names.count)
    }
}

private final class ScrapeResult: @unchecked Sendable {
    private let lock = NSLock()
    private var value: [MetricFamily]?
    var families: [MetricFamily]? {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}
