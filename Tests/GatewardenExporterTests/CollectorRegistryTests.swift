import Testing
@testable import GatewardenExporter

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

    @Test("no metric name appears twice in one scrape")
    func noDuplicateFamilies() {
        let registry = CollectorRegistry(collectors: [FixedCollector(name: "a", fails: false)],
                                         constantFamilies: [BuildInfo.family])
        let names = registry.scrape().map(\.name)
        #expect(Set(names).count == names.count)
    }
}
