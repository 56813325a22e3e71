import Foundation

/// A real nginx in a network namespace, in the foreground as this test's child, with everything it
/// writes (configuration, pid file, logs, temporary files) in a temporary folder that `stop()` removes.
///
/// The caller writes the `http` block; around it go one worker, the pid file, the error log and the
/// temporary paths, all in the folder. nginx tests the configuration (`nginx -t`) before it starts, so
/// a refused configuration fails with nginx's own words. It is stopped by the PID in its pid file.
final class Nginx {
    let namespace: String
    let directory: URL
    /// What `nginx -t` said of the configuration (it accepted it, or `init` would have thrown).
    private(set) var configurationTest = Command.Result(status: -1, stdout: "", stderr: "")
    private let server = Process()
    private var stopped = false

    /// The default test server: TLS (a self-signed certificate made for the run, a shared session cache)
    /// on 443 and plain HTTP on 80, both answering `GET /` with `ok`, access log off.
    convenience init(namespace: String, clientHeaderTimeoutSeconds: Int = 60) throws {
        try self.init(namespace: namespace) { path in
            try Command.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=gateway",
                             "-keyout", path("key.pem"), "-out", path("cert.pem")])
            return """
                access_log off;
                ssl_session_cache shared:gatewarden_test:1m;
                client_header_timeout \(clientHeaderTimeoutSeconds)s;
                keepalive_requests 100000;
                server {
                    listen 443 ssl backlog=4096;
                    listen 80 backlog=4096;
                    ssl_certificate \(path("cert.pem"));
                    ssl_certificate_key \(path("key.pem"));
                    location / { return 200 "ok\\n"; }
                }
                """
        }
    }

    /// nginx with `http` as the body of its http block. `http` is given the folder's path for a file
    /// name, to place certificates, logs and included files there.
    init(namespace: String, http: (_ path: (String) -> String) throws -> String) throws {
        self.namespace = namespace
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-nginx-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        do {
            let body = try http(path)
            let config = """
                worker_processes 1;
                pid \(path("nginx.pid"));
                error_log \(path("error.log"));
                events { worker_connections 4096; }
                http {
                    client_body_temp_path \(path("body")); proxy_temp_path \(path("proxy"));
                    fastcgi_temp_path \(path("fastcgi")); uwsgi_temp_path \(path("uwsgi")); scgi_temp_path \(path("scgi"));
                \(body)
                }
                """
            try config.write(toFile: path("nginx.conf"), atomically: true, encoding: .utf8)
            configurationTest = try Command.run(["ip", "netns", "exec", namespace, "nginx", "-t", "-c", path("nginx.conf")])
            // In the foreground: a daemonized nginx would inherit the descriptor Foundation watches for
            // the child's exit and keep it open. It logs to error.log; its output goes nowhere.
            server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            server.arguments = ["ip", "netns", "exec", namespace, "nginx", "-c", path("nginx.conf"), "-g", "daemon off;"]
            server.standardInput = FileHandle.nullDevice
            server.standardOutput = FileHandle.nullDevice
            server.standardError = FileHandle.nullDevice
            try server.run()
            let deadline = Date().addingTimeInterval(5)
            while server.isRunning && pid == nil && Date() < deadline { usleep(10_000) }
            guard server.isRunning, pid != nil else {
                let log = (try? String(contentsOfFile: path("error.log"), encoding: .utf8)) ?? ""
                throw Command.Failure(command: server.arguments ?? [], result: .init(status: -1, stdout: "", stderr: "nginx did not start: \(log)"))
            }
        } catch {
            stop()
            throw error
        }
    }

    /// A file in nginx's folder.
    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// nginx's master process, from its pid file.
    var pid: pid_t? {
        (try? String(contentsOfFile: path("nginx.pid"), encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Stops nginx (fast shutdown) and removes its folder; safe to call more than once.
    func stop() {
        guard !stopped else { return }
        stopped = true
        // The master by its pid file, else the process started (ip netns exec execs nginx); then by force.
        for signal in [SIGTERM, SIGKILL] where server.isRunning {
            kill(pid ?? server.processIdentifier, signal)
            let deadline = Date().addingTimeInterval(5)
            while server.isRunning && Date() < deadline { usleep(20_000) }
        }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }
}
