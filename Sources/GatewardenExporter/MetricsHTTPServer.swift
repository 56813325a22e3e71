import CMicroHTTPD
import Foundation

/// The exporter's HTTP endpoint on libmicrohttpd: `/metrics` (or `--web.telemetry-path`),
/// a landing page at `/`, and `/-/healthy` and `/-/ready`.
///
/// libmicrohttpd runs one internal epoll thread; each scrape runs the collectors on it.
/// Connection count, per-connection memory (which caps header size) and idle time are bounded,
/// so a slow or hostile client cannot hold the exporter.
///
///     let server = try MetricsHTTPServer(configuration: .init(listenAddress: try .init(parsing: ":10099")),
///                                        registry: registry)
///     // ... serves until `stop()` or deinit
public final class MetricsHTTPServer: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var listenAddress: ListenAddress
        public var telemetryPath: String = "/metrics"
        public var maxConnections: UInt32 = 40
        public var connectionTimeoutSeconds: UInt32 = 30
        /// Per-connection buffer for the request line and headers.
        public var connectionMemoryLimit: Int = 32 * 1024

        public init(listenAddress: ListenAddress) {
            self.listenAddress = listenAddress
        }
    }

    public let configuration: Configuration
    public let registry: CollectorRegistry
    /// The port actually listened on (differs from the configured one when that was 0).
    public private(set) var port: UInt16 = 0
    private var daemon: OpaquePointer?

    public init(configuration: Configuration, registry: CollectorRegistry) throws {
        self.configuration = configuration
        self.registry = registry
        let socket = try configuration.listenAddress.listen()
        port = ListenAddress.boundPort(of: socket) ?? configuration.listenAddress.port

        let flags = MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_EPOLL.rawValue | MHD_USE_ERROR_LOG.rawValue
        let options: [CVarArg] = [
            MHD_OPTION.LISTEN_SOCKET.rawValue, socket,
            MHD_OPTION.CONNECTION_LIMIT.rawValue, configuration.maxConnections,
            MHD_OPTION.CONNECTION_TIMEOUT.rawValue, configuration.connectionTimeoutSeconds,
            MHD_OPTION.CONNECTION_MEMORY_LIMIT.rawValue, configuration.connectionMemoryLimit,
            MHD_OPTION.END.rawValue,
        ]
        let context = Unmanaged.passUnretained(self).toOpaque()
        daemon = withVaList(options) { arguments in
            MHD_start_daemon_va(flags, 0, nil, nil, Self.accessHandler, context, arguments)
        }
        guard daemon != nil else {
            close(socket)
            throw ListenAddressError(text: configuration.listenAddress.description, reason: "libmicrohttpd could not start")
        }
    }

    deinit {
        stop()
    }

    public func stop() {
        if let daemon {
            // MHD_stop_daemon closes the listen socket passed in with MHD_OPTION_LISTEN_SOCKET.
            MHD_stop_daemon(daemon)
            self.daemon = nil
        }
    }

    /// A response before it is handed to libmicrohttpd.
    struct Response {
        var status: UInt32
        var contentType: String
        var body: String
        var headers: [(String, String)] = []
    }

    func respond(method: String, path: String) -> Response {
        guard method == "GET" || method == "HEAD" else {
            return Response(status: 405, contentType: "text/plain; charset=utf-8",
                            body: "Method Not Allowed\n", headers: [("Allow", "GET, HEAD")])
        }
        switch path {
        case configuration.telemetryPath:
            return Response(status: 200, contentType: TextFormat.contentType, body: TextFormat.render(registry.scrape()))
        case "/":
            return Response(status: 200, contentType: "text/html; charset=utf-8", body: landingPage)
        case "/-/healthy", "/-/ready":
            return Response(status: 200, contentType: "text/plain; charset=utf-8", body: "OK\n")
        default:
            return Response(status: 404, contentType: "text/plain; charset=utf-8", body: "Not Found\n")
        }
    }

    private var landingPage: String {
        """
        <!DOCTYPE html>
        <html><head><title>Gatewarden exporter</title></head>
        <body><h1>Gatewarden exporter</h1>
        <p>Kernel-level rate limiting for API gateways: XDP and nftables.</p>
        <ul><li><a href="\(configuration.telemetryPath)">Metrics</a></li>
        <li><a href="/-/healthy">Health</a></li></ul>
        </body></html>

        """
    }

    private static let accessHandler: MHD_AccessHandlerCallback = {
        context, connection, url, method, _, _, _, _ in
        guard let context, let connection else { return .NO }
        let server = Unmanaged<MetricsHTTPServer>.fromOpaque(context).takeUnretainedValue()
        let response = server.respond(method: method.map { String(cString: $0) } ?? "",
                                      path: url.map { String(cString: $0) } ?? "/")
        return MetricsHTTPServer.queue(response, on: connection)
    }

    private static func queue(_ response: Response, on connection: OpaquePointer) -> MHD_Result {
        var body = response.body
        let handle = body.withUTF8 { bytes in
            MHD_create_response_from_buffer(bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress),
                                            .RESPMEM_MUST_COPY)
        }
        guard let handle else { return .NO }
        defer { MHD_destroy_response(handle) }
        MHD_add_response_header(handle, "Content-Type", response.contentType)
        for (name, value) in response.headers {
            MHD_add_response_header(handle, name, value)
        }
        return MHD_queue_response(connection, response.status, handle)
    }
}
