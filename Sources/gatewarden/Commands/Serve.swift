import ArgumentParser
import Foundation
import GatewardenEnforce
import GatewardenServe
import GatewardenKernel

/// `gatewarden serve`: the Prometheus exporter, and the enforce loop beside it.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve Prometheus metrics read live from nftables and the XDP maps, and run the enforce loop.",
        discussion: """
        Listens in the namespace the command starts in; with --netns, reads nftables inside that \
        namespace and the XDP pins made for it. Unless --no-enforce, it also runs the enforce loop \
        (see `gatewarden enforce --help`) with --policy: one long-running process per host. Stopping it \
        never stops the protection and never lifts a ban.
        """
    )

    @OptionGroup var state: BanStateOptions

    @OptionGroup var policyOptions: PolicyOptions

    @Flag(name: .customLong("no-enforce"), help: "Export only: do not run the enforce loop in this process.")
    var noEnforce = false

    @Option(name: .customLong("web.listen-address"), help: "Address to listen on: :PORT, HOST:PORT or [IPv6]:PORT.")
    var listenAddress: String = ":10099"

    @Option(name: .customLong("web.telemetry-path"), help: "Path under which metrics are served.")
    var telemetryPath: String = "/metrics"

    @Option(name: .customLong("web.max-requests"), help: ArgumentHelp(
        "Maximum requests answered at once; more get 503 at once.",
        discussion: "Connections are limited to four times this, so clients still sending requests leave room."))
    var maxRequests: UInt32 = 40

    @Option(name: .customLong("web.max-connections-per-ip"), help: "Maximum connections open at once from one client address.")
    var maxConnectionsPerIP: UInt32 = 8

    @Option(name: .customLong("web.read-timeout"), help: ArgumentHelp(
        "Time a client has to send its whole request (from connecting, or from its previous response), and to take a response.",
        valueName: "duration"))
    var readTimeout: TimeoutArgument = TimeoutArgument(argument: "10s")!

    @Option(name: .customLong("collector.timeout"), help: ArgumentHelp(
        "Time a scrape waits for each collector; one that takes longer is reported by gatewarden_up 0.",
        valueName: "duration"))
    var collectorTimeout: TimeoutArgument = TimeoutArgument(argument: "5s")!

    @Option(name: .customLong("web.config.file"), help: ArgumentHelp(
        "TLS and basic auth settings, in the Prometheus exporter-toolkit format.", valueName: "file"))
    var webConfigFile: String?

    @Option(name: .customLong("collector.xdp.top-k"), help: "How many top offending sources and subnets to export, each.")
    var topK: Int = 20

    func validate() throws {
        guard telemetryPath.hasPrefix("/") else {
            throw ValidationError("--web.telemetry-path must start with '/'")
        }
        guard (1...100_000).contains(maxRequests) else { throw ValidationError("--web.max-requests must be 1 to 100000") }
        guard maxConnectionsPerIP > 0 else { throw ValidationError("--web.max-connections-per-ip must be at least 1") }
        guard (0...1000).contains(topK) else { throw ValidationError("--collector.xdp.top-k must be 0 to 1000") }
    }

    func run() throws {
        let namespace = try state.namespace()
        let policy = try policyOptions.load()
        var configuration = MetricsHTTPServer.Configuration(listenAddress: try ListenAddress(parsing: listenAddress))
        configuration.telemetryPath = telemetryPath
        configuration.maxRequests = maxRequests
        configuration.maxConnectionsPerClient = maxConnectionsPerIP
        configuration.requestTimeout = readTimeout.value
        if let webConfigFile {
            configuration.webConfig = try WebConfig(contentsOf: webConfigFile)
        }
        // Only once every flag and file has been read: bad input starts nothing and creates no store.
        // The exporter serves even when the loop cannot start (a read-only or foreign state folder,
        // another loop running): the enforce collector then reports itself down.
        var loop: EnforceLoop?
        if !noEnforce {
            do { loop = try EnforceRunner.makeLoop(state: state, policy: policy) } catch {
                FileHandle.standardError.write(Data("gatewarden: not enforcing: \(error)\n".utf8))
            }
        }

        let registry = CollectorRegistry(
            collectors: [
                try NFTablesCollector(namespace: namespace),
                XDPCollector(namespace: namespace, topK: topK),
                ConntrackCollector(namespace: namespace),
                EnforceCollector(stateDirectory: state.directory, store: loop?.book.store),
                ProcessCollector(),
            ],
            constantFamilies: [BuildInfo.family],
            timeout: collectorTimeout.value)

        // Block the stop signals before libmicrohttpd starts its thread, so only sigwait sees them.
        let stopSignals = SignalSet([SIGINT, SIGTERM])
        stopSignals.block()
        let server = try MetricsHTTPServer(configuration: configuration, registry: registry)
        let scheme = configuration.webConfig.tls == nil ? "http" : "https"
        FileHandle.standardError.write(Data(
            "gatewarden: serving \(scheme) \(telemetryPath) on port \(server.port) for \(namespace)\n".utf8))
        let bpffs = BPFFilesystem()
        if !bpffs.isMounted {
            FileHandle.standardError.write(Data(
                "gatewarden: no bpffs at \(bpffs.path) yet: no XDP instance to read until `gatewarden load` mounts it\n".utf8))
        }
        let stopEnforcing = StopFlag()
        if let loop {
            FileHandle.standardError.write(Data(("gatewarden: enforcing \(policyOptions.name) in \(namespace); "
                + "ban store \(state.directory)\n").utf8))
            Thread { loop.run(until: { stopEnforcing.isSet }); stopEnforcing.finished() }.start()
        } else {
            stopEnforcing.finished()
        }
        let signal = stopSignals.wait()
        stopEnforcing.set()
        stopEnforcing.waitFinished()
        server.stop()
        FileHandle.standardError.write(Data("gatewarden: stopped on signal \(signal)\n".utf8))
    }
}

/// A timeout written like `500ms`, `10s` or `2m`: above zero, at most an hour.
struct TimeoutArgument: ExpressibleByArgument {
    let value: Duration
    let text: String

    init?(argument: String) {
        let units: [(suffix: String, milliseconds: Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000)]
        guard let unit = units.first(where: { argument.hasSuffix($0.suffix) }),
              let amount = Int64(argument.dropLast(unit.suffix.count)), amount > 0,
              amount <= 3_600_000 / unit.milliseconds else { return nil }
        value = .milliseconds(amount * unit.milliseconds)
        text = argument
    }

    var defaultValueDescription: String { text }
}

/// Signals a thread blocks and then waits for synchronously.
struct SignalSet {
    private var set = sigset_t()

    init(_ signals: [Int32]) {
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
    }

    func block() {
        var set = set
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    func wait() -> Int32 {
        var set = set
        var received: Int32 = 0
        sigwait(&set, &received)
        return received
    }
}
