import Foundation

/// A real Prometheus (Debian's package) on loopback, scraping `targets` every second, with its
/// own temporary storage; stopped by PID and its files removed when the test ends.
final class PrometheusServer {
    let process = Process()
    let port: Int
    let directory: URL

    init(targets: [String], ruleFiles: [String] = [], alertmanager: String? = nil) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-prometheus-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        port = try ExporterProcess.freePortForTests()
        var config = """
        global:
          scrape_interval: 1s
          evaluation_interval: 1s
        scrape_configs:
          - job_name: gatewarden
            static_configs:
              - targets: [\(targets.map { "'\($0)'" }.joined(separator: ", "))]

        """
        if !ruleFiles.isEmpty {
            config += "rule_files:\n" + ruleFiles.map { "  - '\($0)'\n" }.joined()
        }
        if let alertmanager {
            config += "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['\(alertmanager)']\n"
        }
        let configPath = directory.appendingPathComponent("prometheus.yml").path
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
        process.arguments = ["--config.file=\(configPath)", "--storage.tsdb.path=\(directory.appendingPathComponent("data").path)",
                             "--web.listen-address=127.0.0.1:\(port)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }

    /// Polls an instant query until it returns one sample; its value.
    func waitForValue(query: String, timeout: Double) throws -> Double? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let result = try? Command.run(["curl", "-sf", "--max-time", "2", "-G", "http://127.0.0.1:\(port)/api/v1/query",
                                              "--data-urlencode", "query=\(query)"], check: false),
               result.status == 0,
               let json = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
               let data = json["data"] as? [String: Any], let samples = data["result"] as? [[String: Any]],
               let first = samples.first, let value = first["value"] as? [Any], let text = value.last as? String {
                return Double(text)
            }
            usleep(250_000)
        }
        return nil
    }
}
