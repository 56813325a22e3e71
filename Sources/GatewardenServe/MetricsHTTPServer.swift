import CMicroHTTPD
import Foundation

/// The exporter's HTTP endpoint on libmicrohttpd: `/metrics` (or `--web.telemetry-path`),
/// a landing page at `/`, and `/-/healthy` and `/-/ready`.
///
/// libmicrohttpd polls with epoll from a small pool of internal threads, which only move bytes:
/// each request, once its headers are in, is suspended and answered on a worker (basic auth costs
/// a bcrypt computation, a scrape waits for the collection), then resumed to send the response.
/// Scrapes that arrive together share one collection (`CollectorRegistry` runs it single-flight).
///
/// What a slow or hostile client can hold is bounded:
/// - at most `maxRequests` requests are answered at once; one more gets 503 at once;
/// - at most `maxConnections` connections (comfortably above `maxRequests`, so connections still
///   sending their request do not keep a scrape out), and `maxConnectionsPerClient` per address;
/// - `requestTimeout` to send a request and to take a response, however the bytes trickle
///   (`ConnectionDeadlines`); per-connection memory, which caps the header size.
/// TLS and basic auth come from `--web.config.file`.
///
///     let server = try MetricsHTTPServer(configuration: .init(listenAddress: try .init(parsing: ":10099")),
///                                        registry: registry)
public final class MetricsHTTPServer: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var listenAddress: ListenAddress
        public var telemetryPath: String = "/metrics"
        /// Requests answered at once (`--web.max-requests`); more get 503.
        public var maxRequests: UInt32 = 40
        /// Connections open at once; past it libmicrohttpd leaves new ones in the listen backlog.
        /// Nil: four times `maxRequests`, room for clients still sending their requests.
        public var maxConnections: UInt32? = nil
        /// Connections open at once from one client address (`--web.max-connections-per-ip`).
        public var maxConnectionsPerClient: UInt32 = 8
        /// Time a client has to send a request and, once it is answered, to take the response
        /// (`--web.read-timeout`).
        public var requestTimeout: Duration = .seconds(10)
        /// Per-connection buffer for the request line and headers.
        public var connectionMemoryLimit: Int = 32 * 1024
        public var threads: UInt32 = 4
        public var webConfig = WebConfig()

        public init(listenAddress: ListenAddress) {
            self.listenAddress = listenAddress
        }

        /// At least one per polling thread: libmicrohttpd shares the limit out among them, and one
        /// left with none never stops.
        var effectiveMaxConnections: UInt32 {
            max(threads, maxConnections ?? maxRequests.multipliedReportingOverflow(by: 4).partialValue)
        }
    }

    public let configuration: Configuration
    public let registry: CollectorRegistry
    /// The port actually listened on (differs from the configured one when that was 0).
    public private(set) var port: UInt16 = 0
    private var daemon: OpaquePointer?
    let users: BasicAuthUsers
    let slots: RequestSlots
    let deadlines: ConnectionDeadlines
    private let workers = DispatchQueue(label: "gatewarden.http", attributes: .concurrent)
    /// libmicrohttpd's own messages (one per connection refused past a limit, among others).
    fileprivate let libraryMessages: ThrottledLog
    /// C strings libmicrohttpd reads after start; freed after it stops.
    private var retainedCStrings: [UnsafeMutablePointer<CChar>] = []

    public init(configuration: Configuration, registry: CollectorRegistry) throws {
        self.configuration = configuration
        self.registry = registry
        users = BasicAuthUsers(configuration.webConfig.basicAuthUsers)
        libraryMessages = ThrottledLog()
        slots = RequestSlots(limit: Int(configuration.maxRequests))
        deadlines = ConnectionDeadlines(limit: configuration.requestTimeout)
        let socket: Int32
        do {
            socket = try configuration.listenAddress.listen()
        } catch {
            deadlines.stop()
            throw error
        }
        port = ListenAddress.boundPort(of: socket) ?? configuration.listenAddress.port

        var flags = MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_EPOLL.rawValue | MHD_USE_ERROR_LOG.rawValue
            | MHD_ALLOW_SUSPEND_RESUME.rawValue
        let context = Unmanaged.passUnretained(self).toOpaque()
        // libmicrohttpd's own timeout counts idleness only; ConnectionDeadlines bounds the total.
        let idleSeconds = UInt32(max(1, min(Double(UInt32.max), configuration.requestTimeout.inSeconds.rounded(.up))))
        var options: [CVarArg] = [
            // First, so that messages about the options that follow go through it too.
            MHD_OPTION.EXTERNAL_LOGGER.rawValue, unsafeBitCast(logLibraryMessage as MHD_LogCallback, to: OpaquePointer.self), OpaquePointer(context),
            MHD_OPTION.LISTEN_SOCKET.rawValue, socket,
            MHD_OPTION.CONNECTION_LIMIT.rawValue, configuration.effectiveMaxConnections,
            MHD_OPTION.PER_IP_CONNECTION_LIMIT.rawValue, configuration.maxConnectionsPerClient,
            MHD_OPTION.CONNECTION_TIMEOUT.rawValue, idleSeconds,
            MHD_OPTION.CONNECTION_MEMORY_LIMIT.rawValue, configuration.connectionMemoryLimit,
            MHD_OPTION.THREAD_POOL_SIZE.rawValue, configuration.threads,
            MHD_OPTION.NOTIFY_CONNECTION.rawValue, unsafeBitCast(Self.connectionNotification, to: OpaquePointer.self), OpaquePointer(context),
            MHD_OPTION.NOTIFY_COMPLETED.rawValue, unsafeBitCast(Self.requestCompleted, to: OpaquePointer.self), OpaquePointer(context),
        ]
        if let tls = configuration.webConfig.tls {
            // MHD_FEATURE_TLS is 2; its alias MHD_FEATURE_SSL hides both names from Swift.
            guard MHD_is_feature_supported(MHD_FEATURE(rawValue: 2)!) == .YES else {
                close(socket)
                deadlines.stop()
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

        daemon = withVaList(options) { arguments in
            MHD_start_daemon_va(flags, 0, nil, nil, MetricsHTTPServer.accessHandler, context, arguments)
        }
        guard daemon != nil else {
            close(socket)
            deadlines.stop()
            retainedCStrings.forEach { free($0) }
            retainedCStrings = []
            throw ListenAddressError(text: configuration.listenAddress.description,
                                     reason: "libmicrohttpd could not start (see the message above)")
        }
    }

    deinit {
        stop()
    }

    public func stop() {
        if let daemon {
            // New requests get 503; those on a worker must resume their connections before
            // libmicrohttpd stops, which refuses to stop with suspended connections.
            slots.closeAndWaitForWorkers()
            // MHD_stop_daemon closes the listen socket passed in with MHD_OPTION_LISTEN_SOCKET.
            MHD_stop_daemon(daemon)
            self.daemon = nil
        }
        deadlines.stop()
        retainedCStrings.forEach { free($0) }
        retainedCStrings = []
    }

    /// What the handler needs to know about a request.
    struct Request {
        var method: String
        var path: String
        var accept: String? = nil
        var acceptEncoding: String? = nil
        /// Basic-auth credentials, when the request carries them.
        var user: String? = nil
        var password: String? = nil
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

        static let unauthorized = Response(status: 401, contentType: "text/plain; charset=utf-8", body: "Unauthorized\n",
                                           headers: [("WWW-Authenticate", "Basic realm=\"gatewarden\"")])
        /// Over `maxRequests`; the connection is closed to free its place.
        static let busy = Response(status: 503, contentType: "text/plain; charset=utf-8",
                                   body: "Service Unavailable: too many requests at once\n",
                                   headers: [("Retry-After", "1"), ("Connection", "close")])
    }

    /// The response to a request that passed admission: 401 unless its credentials check out.
    func answer(_ request: Request) -> Response {
        guard users.isAuthorized(user: request.user, password: request.password) else { return .unauthorized }
        return respond(to: request)
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

    /// First call, headers in: admit the request (or 503 at once), read what the answer needs and
    /// hand it to a worker with the connection suspended. Later calls: swallow any body; queue the
    /// answer once the worker has resumed the connection.
    private static let accessHandler: MHD_AccessHandlerCallback = {
        context, connection, url, method, _, _, uploadSize, exchangeSlot in
        guard let context, let connection, let exchangeSlot else { return .NO }
        let server = Unmanaged<MetricsHTTPServer>.fromOpaque(context).takeUnretainedValue()

        if let existing = exchangeSlot.pointee {
            if let uploadSize, uploadSize.pointee > 0 {
                uploadSize.pointee = 0
                return .YES
            }
            guard let response = Unmanaged<Exchange>.fromOpaque(existing).takeUnretainedValue().takeResponse() else {
                return .YES
            }
            server.deadlines.restart(connection)
            return queue(response, on: connection)
        }

        let exchange = Exchange()
        exchangeSlot.pointee = Unmanaged.passRetained(exchange).toOpaque()
        guard server.slots.enter() else {
            server.deadlines.restart(connection)
            return queue(.busy, on: connection)
        }
        exchange.holdsSlot = true

        var password: UnsafeMutablePointer<CChar>?
        let user = MHD_basic_auth_get_username_password(connection, &password)
        defer {
            if let user { MHD_free(user) }
            if let password { MHD_free(password) }
        }
        func header(_ name: String) -> String? {
            MHD_lookup_connection_value(connection, MHD_ValueKind.HEADER_KIND, name).map { String(cString: $0) }
        }
        let request = Request(method: method.map { String(cString: $0) } ?? "",
                              path: url.map { String(cString: $0) } ?? "/",
                              accept: header("Accept"), acceptEncoding: header("Accept-Encoding"),
                              user: user.map { String(cString: $0) }, password: password.map { String(cString: $0) })

        server.deadlines.suspend(connection)
        MHD_suspend_connection(connection)
        let suspendedConnection = SuspendedConnection(connection)
        server.workers.async {
            exchange.setResponse(server.answer(request))
            // From here the client has its time again, also for any request body it still sends.
            server.deadlines.restart(suspendedConnection.connection)
            MHD_resume_connection(suspendedConnection.connection)
            server.slots.workerDone()
        }
        return .YES
    }

    private static let requestCompleted: MHD_RequestCompletedCallback = { context, connection, exchangeSlot, _ in
        guard let context, let connection, let exchangeSlot, let existing = exchangeSlot.pointee else { return }
        let server = Unmanaged<MetricsHTTPServer>.fromOpaque(context).takeUnretainedValue()
        let exchange = Unmanaged<Exchange>.fromOpaque(existing).takeRetainedValue()
        exchangeSlot.pointee = nil
        if exchange.holdsSlot { server.slots.leave() }
        // On a kept-alive connection, the wait for the next request.
        server.deadlines.restart(connection)
    }

    private static let connectionNotification: MHD_NotifyConnectionCallback = { context, connection, _, event in
        guard let context, let connection else { return }
        let server = Unmanaged<MetricsHTTPServer>.fromOpaque(context).takeUnretainedValue()
        // MHD_CONNECTION_NOTIFY_STARTED (0) and _CLOSED (1); Swift sees neither name.
        switch event.rawValue {
        case 0: server.deadlines.opened(connection, socket: gatewarden_mhd_connection_socket(connection))
        case 1: server.deadlines.closed(connection)
        default: break
        }
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
}

/// One request between its headers and its completion: the answer a worker hands back to the
/// polling thread, and whether the request holds one of the `maxRequests` places.
private final class Exchange: @unchecked Sendable {
    private let lock = NSLock()
    private var response: MetricsHTTPServer.Response?
    var holdsSlot = false

    func setResponse(_ response: MetricsHTTPServer.Response) {
        lock.withLock { self.response = response }
    }

    /// The answer, once; nil while a worker is still on it.
    func takeResponse() -> MetricsHTTPServer.Response? {
        lock.withLock {
            defer { response = nil }
            return response
        }
    }
}

/// A suspended connection handed to a worker, which only resumes it.
private struct SuspendedConnection: @unchecked Sendable {
    let connection: OpaquePointer
    init(_ connection: OpaquePointer) { self.connection = connection }
}

/// Places for requests being answered: past `limit`, a request is refused at once instead of
/// waiting. A request holds its place from its headers to the end of its response; the part of
/// that on a worker is counted too, so stopping can wait for every suspended connection to be
/// resumed.
final class RequestSlots: @unchecked Sendable {
    let limit: Int
    private let condition = NSCondition()
    private var taken = 0
    private var onWorkers = 0
    private var closed = false

    init(limit: Int) {
        self.limit = limit
    }

    /// Requests being answered now.
    var inUse: Int { condition.withLock { taken } }

    /// Takes a place for a request about to go to a worker; false when none is free or the server stops.
    func enter() -> Bool {
        condition.withLock {
            guard !closed, taken < limit else { return false }
            taken += 1
            onWorkers += 1
            return true
        }
    }

    /// The worker has resumed the request's connection.
    func workerDone() {
        condition.withLock { onWorkers -= 1 }
        condition.broadcast()
    }

    /// The request's response is sent, or its connection gone.
    func leave() {
        condition.withLock { taken -= 1 }
    }

    /// Refuses new requests and waits until the workers have resumed every connection they hold.
    func closeAndWaitForWorkers() {
        condition.withLock {
            closed = true
            while onWorkers > 0 { condition.wait() }
        }
    }
}

/// libmicrohttpd's external logger. A global, not a static member: a member whose type holds a
/// va_list crashes the Swift 6 compiler when another module loads this class.
private func logLibraryMessage(_ context: UnsafeMutableRawPointer?, _ format: UnsafePointer<CChar>?,
                               _ arguments: CVaListPointer?) {
    guard let context, let format, let arguments else { return }
    let server = Unmanaged<MetricsHTTPServer>.fromOpaque(context).takeUnretainedValue()
    var text = [UInt8](repeating: 0, count: 512)
    _ = text.withUnsafeMutableBufferPointer { buffer in
        buffer.withMemoryRebound(to: CChar.self) { vsnprintf($0.baseAddress, $0.count, format, arguments) }
    }
    server.libraryMessages.write(String(decoding: text.prefix { $0 != 0 }, as: UTF8.self))
}
