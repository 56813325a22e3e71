import Testing
@testable import GatewardenServe

@Suite("HTTP routing")
struct MetricsHTTPServerRoutingTests {
    private func server() throws -> MetricsHTTPServer {
        var configuration = MetricsHTTPServer.Configuration(listenAddress: .init(host: "127.0.0.1", port: 0))
        configuration.telemetryPath = "/custom"
        return try MetricsHTTPServer(configuration: configuration,
                                     registry: CollectorRegistry(collectors: [], constantFamilies: [BuildInfo.family]))
    }

    @Test("metrics at the telemetry path with the exact 0.0.4 content type")
    func metrics() throws {
        let response = try server().respond(to: .init(method: "GET", path: "/custom"))
        #expect(response.status == 200)
        #expect(response.contentType == "text/plain; version=0.0.4; charset=utf-8")
        #expect(response.text.contains("gatewarden_build_info{version="))
    }

    @Test("landing page, health and readiness")
    func otherRoutes() throws {
        let server = try server()
        #expect(server.respond(to: .init(method: "GET", path: "/")).text.contains("href=\"/custom\""))
        #expect(server.respond(to: .init(method: "GET", path: "/-/healthy")).status == 200)
        #expect(server.respond(to: .init(method: "HEAD", path: "/-/ready")).status == 200)
        #expect(server.respond(to: .init(method: "GET", path: "/metrics")).status == 404)
    }

    @Test("methods other than GET and HEAD get 405 with an Allow header")
    func methodNotAllowed() throws {
        let response = try server().respond(to: .init(method: "POST", path: "/custom"))
        #expect(response.status == 405)
        #expect(response.headers.contains { $0.0 == "Allow" && $0.1 == "GET, HEAD" })
    }
}
