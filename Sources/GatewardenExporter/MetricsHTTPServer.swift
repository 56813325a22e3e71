import CMicroHTTPD
import Foundation

/// The exporter's HTTP endpoint on libmicrohttpd: `/metrics` (or `--web.telemetry-path`),
/// a landing page at `/`, and `/-/healthy` and `/-/ready`.
///
/// libmicrohttpd polls with epoll from a small pool of internal threads; scrapes that arrive
/// together share one collection (`CollectorRegistry` runs it single-flight). Connections,
/// per-connection memory (which caps header size) and idle time are bounded, so a slow or
/// hostile client cannot hold the exporter. TLS and basic auth come from `--web.config.file`.
///
///     let server = try MetricsHTTPServer(configuration: .init(listenAddress: try .init(parsing: ":10099")),
///                                        registry: registry)
public final class MetricsHTTPServer: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var listenAddress: ListenAddress
        public var telemetryPath: String = "/metrics"
        public var maxConnections: UInt32 = 40
        public var connectionTimeoutSeconds: UInt32 = 30
        /// Per-connection buffer for the request line and headers.
        public var connectionMemoryLimit: Int = 32 * 1024
        public var threads: UInt32 = 4
        public var webConfig = WebConfig()

        public init(listenAddress: ListenAddress) {
            self.listenAddress = listenAddress
        }
    }

    public let configuration: Configuration
    public let registry: CollectorRegistry
    /// The port actually listened on (differs from the configured one when that was 0).
    public private(set) var port: UInt16 = 0
    private var daemon: OpaquePointer?
    private let passwords = BCrypt()
    /// C strings libmicrohttpd reads after start; freed after it stops.
    private var retainedCStrings: [UnsafeMutablePointer<CChar>] = []

    public init(configuration: Configuration, registry: CollectorRegistry) throws {
        self.configuration = configuration
        self.registry = registry
        let socket = try configuration.listenAddress.listen()
        port = ListenAddress.boundPort(of: socket) ?? configuration.listenAddress.port

        var flags = MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_EPOLL.rawValue | MHD_USE_ERROR_LOG.rawValue
        var options: [CVarArg] = [
            MHD_OPTION.LISTEN_SOCKET.rawValue, socket,
            MHD_OPTION.CONNECTION_LIMIT.rawValue, configuration.maxConnections,
            MHD_OPTION.CONNECTION_TIMEOUT.rawValue, configuration.connectionTimeoutSeconds,
            MHD_OPTION.CONNECTION_MEMORY_LIMIT.rawValue, configuration.connectionMemoryLimit,
            MHD_OPTION.THREAD_POOL_SIZE.rawValue, configuration.threads,
        ]
        if let tls = configuration.webConfig.tls {
            // MHD_FEATURE_TLS is 2; its alias MHD_FEATURE_SSL hides both names from Swift.
            guard MHD_is_feature_supported(MHD_FEATURE(rawValue: 2)!) == .YES else {
                close(socket)
                throw ListenAddressError(text: configuration.listenAddress.description,
                                         reason: "this libmicrohttpd was built without TLS")
            }
            flags |= MHD_USE_TLS.rawValue
            let key = strdup(tls.keyPEM)!, certificate = strdup(tls.certificatePEM)!, priorities = strdup(tls.priorities)!
            retainedCStrings = [key, certificate, priorities]
            options += [MHD_OPTION.HTTPS_MEM_KEY.rawValue, key,
                        MHD_OPTION.HTTPS_MEM_CERT.rawValue, certificate,
                        MHD_OPTION.HTTPS_PRIORITIES.rawValue, priorities]
        }
        options.append(MHD_OPTION.END.rawValue)

        let context = Unmanaged.passUnretained(self).toOpaque()
        daemon = withVaList(options) { arguments in
            MHD_start_daemon_va(flags, 0, nil, nil, MetricsHTTPServer.accessHandler, context, arguments)
        }
        guard daemon != nil else {
            close(socket)
            retainedCStrings.forEach { free($0) }
            throw ListenAddressError(text: configuration.listenAddress.description,
                                     reason: "libmicrohttpd could not start (see the message above)")
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
        retainedCStrings.forEach { free($0) }
        retainedCStrings = []
    }

    /// What the handler needs to know about a request.
    struct Request {
        var method: String
        var path: String
        var accept: String? = nil
        var acceptEncoding: String? = nil
    }

    /// A response before it is handed to libmicrohttpd.
    struct Response {
        var status: UInt32
        var contentType: String
        var body: [UInt8]
        var headers: [(String, String)] = []

        init(status: UInt32, contentType: String, body: String, headers: [(String, String)] = []) {
            self.status = status
            self.contentType = contentType
            self.body = Array(body.utf8)
            self.headers = headers
        }

        var text: String { String(decoding: body, as: UTF8.self) }
    }

    func respond(to request: Request) -> Response {
        guard request.method == "GET" || request.method == "HEAD" else {
            return Response(status: 405, contentType: "text/plain; charset=utf-8",
                            body: "Method Not Allowed\n", headers: [("Allow", "GET, HEAD")])
        }
        switch request.path {
        case configuration.telemetryPath:
            let format = ExpositionFormat.negotiate(accept: request.accept)
            var response = Response(status: 200, contentType: format.contentType, body: format.render(registry.scrape()))
            response.headers.append(("Vary", "Accept, Accept-Encoding"))
            if Self.acceptsGzip(request.acceptEncoding), let compressed = try? Gzip.compress(response.body) {
                response.body = compressed
                response.headers.append(("Content-Encoding", "gzip"))
            }
            return response
        case "/":
            return Response(status: 200, contentType: "text/html; charset=utf-8", body: landingPage)
        case "/-/healthy", "/-/ready":
            return Response(status: 200, contentType: "text/plain; charset=utf-8", body: "OK\n")
        default:
            return Response(status: 404, contentType: "text/plain; charset=utf-8", body: "Not Found\n")
        }
    }

    /// Whether Accept-Encoding allows gzip (named or `*`, with a quality above 0).
    static func acceptsGzip(_ header: String?) -> Bool {
        guard let header else { return false }
        return header.split(separator: ",").contains { coding in
            let parts = coding.split(separator: ";").map { $0.trimmingSpaces.lowercased() }
            guard parts.first == "gzip" || parts.first == "*" else { return false }
            let quality = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            return quality > 0
        }
    }

    /// With basic auth configured, whether the request carries a known user and matching password.
    func isAuthorized(user: String?, password: String?) -> Bool {
        let users = configuration.webConfig.basicAuthUsers
        guard !users.isEmpty else { return true }
        guard let user, let password, let hash = users[user] else { return false }
        return passwords.verify(password: password, hash: hash)
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

        var password: UnsafeMutablePointer<CChar>?
        let user = MHD_basic_auth_get_username_password(connection, &password)
        defer {
            if let user { MHD_free(user) }
            if let password { MHD_free(password) }
        }
        guard server.isAuthorized(user: user.map { String(cString: $0) }, password: password.map { String(cString: $0) }) else {
            return MetricsHTTPServer.queueUnauthorized(on: connection)
        }

        func header(_ name: String) -> String? {
            MHD_lookup_connection_value(connection, MHD_ValueKind.HEADER_KIND, name).map { String(cString: $0) }
        }
        let request = Request(method: method.map { String(cString: $0) } ?? "",
                              path: url.map { String(cString: $0) } ?? "/",
                              accept: header("Accept"), acceptEncoding: header("Accept-Encoding"))
        return MetricsHTTPServer.queue(server.respond(to: request), on: connection)
    }

    private static func queue(_ response: Response, on connection: OpaquePointer) -> MHD_Result {
        var body = response.body
        let handle = body.withUnsafeMutableBytes { bytes in
            MHD_create_response_from_buffer(bytes.count, bytes.baseAddress, .RESPMEM_MUST_COPY)
        }
        guard let handle else { return .NO }
        defer { MHD_destroy_response(handle) }
        MHD_add_response_header(handle, "Content-Type", response.contentType)
        for (name, value) in response.headers {
            MHD_add_response_header(handle, name, value)
        }
        return MHD_queue_response(connection, response.status, handle)
    }

    private static func queueUnauthorized(on connection: OpaquePointer) -> MHD_Result {
        var body = Array("Unauthorized\n".utf8)
        let handle = body.withUnsafeMutableBytes { bytes in
            MHD_create_response_from_buffer(bytes.count, bytes.baseAddress, .RESPMEM_MUST_COPY)
        }
        guard let handle else { return .NO }
        defer { MHD_destroy_response(handle) }
        MHD_add_response_header(handle, "Content-Type", "text/plain; charset=utf-8")
        return MHD_queue_basic_auth_fail_response(connection, "gatewarden", handle)
    }
}
