import Foundation
import Testing
@testable import GatewardenServe
#if canImport(Glibc)
import Glibc
#endif

@Suite("OpenMetrics 1.0.0 and content negotiation")
struct OpenMetricsFormatTests {
    @Test("counter families drop _total from the family name, keep it on samples, and the output ends in # EOF")
    func counters() {
        var family = MetricFamily(name: "gatewarden_xdp_packets_total", help: "Packets \"seen\".", type: .counter)
        family.add(["action": "pass"], 12)
        #expect(OpenMetricsFormat.render([family]) == """
        # TYPE gatewarden_xdp_packets counter
        # HELP gatewarden_xdp_packets Packets \\"seen\\".
        gatewarden_xdp_packets_total{action="pass"} 12
        # EOF

        """)
    }

    @Test("Prometheus's own Accept header gets OpenMetrics", arguments: [
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "application/openmetrics-text",
        "text/plain;q=0.2, application/openmetrics-text; version=1.0.0; q=0.9",
    ])
    func choosesOpenMetrics(accept: String) {
        #expect(ExpositionFormat.negotiate(accept: accept) == .openMetrics)
    }

    @Test("anything else gets text 0.0.4", arguments: [
        nil, "", "text/plain", "*/*", "application/openmetrics-text;version=0.0.1",
        "application/openmetrics-text;q=0", "application/openmetrics-text;q=0.3,text/plain;q=0.8",
    ] as [String?])
    func choosesText(accept: String?) {
        #expect(ExpositionFormat.negotiate(accept: accept) == .text)
    }

    @Test("exact content types")
    func contentTypes() {
        #expect(ExpositionFormat.text.contentType == "text/plain; version=0.0.4; charset=utf-8")
        #expect(ExpositionFormat.openMetrics.contentType == "application/openmetrics-text; version=1.0.0; charset=utf-8")
    }

    @Test("gzip when Accept-Encoding allows it", arguments: [
        ("gzip", true), ("deflate, gzip;q=0.5", true), ("*", true), ("gzip;q=0", false), ("br", false), (nil, false),
    ] as [(String?, Bool)])
    func gzipNegotiation(header: String?, expected: Bool) {
        #expect(MetricsHTTPServer.acceptsGzip(header) == expected)
    }

    @Test("gzip round trip")
    func gzipRoundTrip() throws {
        let text = Array(String(repeating: "gatewarden_up{collector=\"xdp\"} 1\n", count: 500).utf8)
        let compressed = try Gzip.compress(text)
        #expect(compressed.count < text.count / 10)
        #expect(compressed.prefix(2) == [0x1f, 0x8b])
        #expect(try Gzip.decompress(compressed) == text)
    }
}

@Suite("Top-K and single-flight")
struct TopKTests {
    @Test("keeps exactly the k largest, largest first")
    func topK() {
        var top = TopK<Int>(k: 3)
        for value in [5, 1, 9, 3, 7, 8, 2] { top.offer(value, UInt64(value)) }
        #expect(top.sorted.map(\.item) == [9, 8, 7])
        var none = TopK<Int>(k: 0)
        none.offer(1, 1)
        #expect(none.sorted.isEmpty)
    }

    @Test("concurrent callers share one run")
    func singleFlight() {
        // Real threads: the cooperative pool has as many threads as cores, which other tests share.
        final class Counter: @unchecked Sendable {
            let lock = NSLock()
            var runs = 0
            var results: [Int] = []
        }
        let flight = SingleFlight<Int>()
        let counter = Counter()
        let group = DispatchGroup()
        for _ in 0..<8 {
            group.enter()
            Thread {
                let value = flight.run {
                    counter.lock.withLock { counter.runs += 1 }
                    usleep(300_000)
                    return 42
                }
                counter.lock.withLock { counter.results.append(value) }
                group.leave()
            }.start()
        }
        group.wait()
        #expect(counter.results == Array(repeating: 42, count: 8))
        #expect(counter.runs < 8, "runs: \(counter.runs)")
    }
}
