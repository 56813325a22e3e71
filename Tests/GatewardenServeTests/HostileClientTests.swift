import Foundation
import Testing
@testable import GatewardenServe

/// A collector that blocks until released, counting how often it was entered.
final class GatedCollector: Collector, @unchecked Sendable {
    let name: String
    private let condition = NSCondition()
    private var entered = 0
    private var released = false

    init(name: String) {
        self.name = name
    }

    func collect() throws -> [MetricFamily] {
        condition.withLock {
            entered += 1
            while !released { condition.wait() }
        }
        var family = MetricFamily(name: "gatewarden_test_\(name)", help: "test", type: .gauge)
        family.add([:], 1)
        return [family]
    }

    var entries: Int { condition.withLock { entered } }
    var isReleased: Bool { condition.withLock { released } }

    func release() {
        condition.withLock { released = true }
        condition.broadcast()
    }
}

/// Waits up to `seconds` for `condition`.
func eventually(within seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date(timeIntervalSinceNow: seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}

@Suite("HTTP under hostile clients (loopback, in-process)", .serialized)
struct HostileClientTests {
    private func server(_ adjust: (inout MetricsHTTPServer.Configuration) -> Void = { _ in },
                        registry: CollectorRegistry = CollectorRegistry(collectors: [], constantFamilies: [BuildInfo.family]))
        throws -> MetricsHTTPServer {
        var configuration = MetricsHTTPServer.Configuration(listenAddress: .init(host: "127.0.0.1", port: 0))
        adjust(&configuration)
        return try MetricsHTTPServer(configuration: configuration, registry: registry)
    }

    @Test("45 clients trickling header bytes from 45 addresses: every scrape still succeeds (default limits)")
    func slowClientsDoNotStarveScrapes() throws {
        let server = try server()
        defer { server.stop() }
        let slow = try TricklingClients(count: 45, port: server.port, sources: (2...46).map { "127.0.0.\($0)" }, interval: 0.5)
        defer { slow.stop() }
        usleep(300_000)
        for _ in 0..<5 {
            let reply = try LoopbackClient.get(port: server.port, timeout: 5)
            #expect(reply.status == 200)
            #expect(reply.body.contains("gatewarden_build_info"))
            usleep(200_000)
        }
        // The scrapes got through while every slow client still held its connection.
        #expect(slow.closedByServer == 0)
    }

    @Test("one address holds at most --web.max-connections-per-ip connections; others still scrape")
    func perClientLimit() throws {
        let server = try server()
        defer { server.stop() }
        let slow = try TricklingClients(count: 45, port: server.port, sources: ["127.0.0.2"], interval: 0.5)
        defer { slow.stop() }
        let limit = Int(server.configuration.maxConnectionsPerClient)
        #expect(eventually(within: 3) { slow.closedByServer >= 45 - limit })
        #expect(slow.closedByServer == 45 - limit)
        #expect(try LoopbackClient.get(port: server.port, timeout: 5).status == 200)
    }

    @Test("a client trickling its request is cut off at --web.read-timeout, not kept alive by each byte")
    func requestDeadline() throws {
        let server = try server { $0.requestTimeout = .seconds(1) }
        defer { server.stop() }
        let start = Date()
        let slow = try TricklingClients(count: 1, port: server.port, sources: ["127.0.0.2"], interval: 0.2)
        defer { slow.stop() }
        #expect(eventually(within: 6) { slow.closedByServer == 1 })
        #expect(Date().timeIntervalSince(start) >= 0.9)
        #expect(try LoopbackClient.get(port: server.port, timeout: 5).status == 200)
    }

    @Test("over --web.max-requests a request gets 503 at once, while the others wait for their collection")
    func busyAnswersAtOnce() throws {
        let gate = GatedCollector(name: "gate")
        let server = try server({ $0.maxRequests = 4 },
                                registry: CollectorRegistry(collectors: [gate], timeout: .seconds(30)))
        defer { server.stop() }
        // Before stopping: the server finishes the requests it is answering.
        defer { gate.release() }

        let waiting = DispatchGroup()
        let statuses = Statuses()
        // Threads of their own: blocking clients on the global queue wait for a worker thread, which tests
        // running in parallel on two CPUs can hold for longer than the wait below.
        for _ in 0..<4 {
            waiting.enter()
            Thread {
                statuses.append((try? LoopbackClient.get(port: server.port, timeout: 10))?.status ?? 0)
                waiting.leave()
            }.start()
        }
        #expect(eventually(within: 5) { server.slots.inUse == 4 && gate.entries == 1 })

        let refused = try LoopbackClient.get(port: server.port, timeout: 5)
        #expect(refused.status == 503)
        #expect(refused.head.contains("Retry-After: 1"))
        // Answered while the collection the other four wait for is still blocked.
        #expect(!gate.isReleased)

        gate.release()
        #expect(waiting.wait(timeout: .now() + 10) == .success)
        #expect(statuses.values == [200, 200, 200, 200])
        #expect(eventually(within: 2) { server.slots.inUse == 0 })
    }

    @Test("basic auth over HTTP: 401 with a challenge without or with wrong credentials, 200 with the right ones")
    func basicAuthOverHTTP() throws {
        let server = try server { $0.webConfig = WebConfig(basicAuthUsers: ["prometheus": WebConfigTests.hash]) }
        defer { server.stop() }
        func status(_ credentials: String?) throws -> LoopbackClient.Reply {
            let headers = credentials.map { ["Authorization: Basic " + Data($0.utf8).base64EncodedString()] } ?? []
            return try LoopbackClient.get(port: server.port, headers: headers)
        }
        let anonymous = try status(nil)
        #expect(anonymous.status == 401)
        #expect(anonymous.head.contains("WWW-Authenticate: Basic realm=\"gatewarden\""))
        #expect(try status("prometheus:wrong").status == 401)
        #expect(try status("nobody:scrape-secret").status == 401)
        #expect(try status("prometheus:scrape-secret").status == 200)
    }
}

private final class Statuses: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [Int] = []
    func append(_ status: Int) { lock.withLock { list.append(status) } }
    var values: [Int] { lock.withLock { list.sorted() } }
}

@Suite("Basic auth timing")
struct BasicAuthTimingTests {
    @Test("an unknown user costs what a known user with a wrong password costs (a bcrypt computation)")
    func unknownUsersCostTheSame() {
        let users = BasicAuthUsers(["prometheus": WebConfigTests.hash, "grafana": WebConfigTests.hash])
        func milliseconds(_ user: String) -> Double {
            let start = ContinuousClock.now
            #expect(!users.isAuthorized(user: user, password: "guess"))
            return (ContinuousClock.now - start).inSeconds * 1000
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        var known: [Double] = [], unknown: [Double] = []
        // Interleaved, so a burst of load elsewhere slows both alike; medians shed the outliers.
        for round in 0..<9 {
            known.append(milliseconds("prometheus"))
            unknown.append(milliseconds("nobody-\(round)"))
        }
        let knownMedian = median(known), unknownMedian = median(unknown)
        // bcrypt at cost 10 takes tens of milliseconds; a dictionary miss takes microseconds.
        #expect(knownMedian >= 5, "known user: \(knownMedian) ms")
        #expect(unknownMedian >= 5, "unknown user: \(unknownMedian) ms")
        #expect(max(knownMedian, unknownMedian) / min(knownMedian, unknownMedian) < 2,
                "known \(knownMedian) ms, unknown \(unknownMedian) ms")
    }

    @Test("user names are matched exactly")
    func exactNames() {
        let users = BasicAuthUsers(["prometheus": WebConfigTests.hash])
        #expect(users.isAuthorized(user: "prometheus", password: "scrape-secret"))
        #expect(!users.isAuthorized(user: "prometheu", password: "scrape-secret"))
        #expect(!users.isAuthorized(user: "prometheus2", password: "scrape-secret"))
        #expect(!users.isAuthorized(user: nil, password: "scrape-secret"))
        #expect(BasicAuthUsers([:]).isAuthorized(user: nil, password: nil))
    }
}
