import Foundation

/// A real nginx in a network namespace: TLS (a self-signed certificate made for the run, a shared
/// session cache) on 443 and plain HTTP on 80, both answering `GET /` with `ok`, a worker process
/// and access log off. Everything lives in a temporary folder that `stop()` removes.
///
/// nginx runs in the foreground as this test's child; it is stopped by the PID in its pid file.
final class Nginx {
    let namespace: String
    let directory: URL
    private let server = Process()
    private var stopped = false

    init(namespace: String, clientHeaderTimeoutSeconds: Int = 60) throws {
        self.namespace = namespace
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-nginx-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        do {
            try Command.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=gateway",
                             "-keyout", path("key.pem"), "-out", path("cert.pem")])
            let config = """
                worker_processes 1;
                pid \(path("nginx.pid"));
                error_log \(path("error.log"));
                events { worker_connections 4096; }
                http {
                    access_log off;
                    client_body_temp_path \(path("body")); proxy_temp_path \(path("proxy"));
                    fastcgi_temp_path \(path("fastcgi")); uwsgi_temp_path \(path("uwsgi")); scgi_temp_path \(path("scgi"));
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
                }
                """
            try config.write(toFile: path("nginx.conf"), atomically: true, encoding: .utf8)
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

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

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
