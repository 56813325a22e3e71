import Foundation

/// A running `gatewarden serve` on a free loopback port, stopped by PID when the test ends.
final class ExporterProcess {
    let process = Process()
    let port: Int
    let scheme: String
    /// curl options every request needs (credentials, CA).
    let curlOptions: [String]

    /// Without `enforce`, the exporter alone (`--no-enforce`): a test of metrics never has the loop
    /// banning its traffic or repairing what it removed.
    init(arguments: [String], scheme: String = "http", curlOptions: [String] = [], enforce: Bool = false) throws {
        self.scheme = scheme
        self.curlOptions = curlOptions
        port = try Self.freePort()
        process.executableURL = URL(fileURLWithPath: GatewardenBinary.path)
        process.arguments = ["serve", "--web.listen-address", "127.0.0.1:\(port)"] + (enforce ? [] : ["--no-enforce"]) + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.standardError
        try process.run()
        try waitUntilReady()
    }

    deinit { stop() }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    var baseURL: String { "\(scheme)://localhost:\(port)" }

    /// GET a path with curl; returns the body.
    func get(_ path: String = "/metrics", headers: [String] = []) throws -> String {
        try curl(path, headers.flatMap { ["-H", $0] }).stdout
    }

    /// curl with the exporter's options plus `extra`; `-w` output lands after the body.
    func curl(_ path: String, _ extra: [String] = [], options: [String]? = nil) throws -> Command.Result {
        try Command.run(["curl", "-sS", "--max-time", "10"] + (options ?? curlOptions) + extra + ["\(baseURL)\(path)"])
    }

    private func waitUntilReady() throws {
        for _ in 0..<100 {
            if let result = try? Command.run(["curl", "-sf", "--max-time", "1"] + curlOptions + ["\(baseURL)/-/ready"], check: false),
               result.status == 0 { return }
            guard process.isRunning else { throw ExporterFailed(reason: "exited with \(process.terminationStatus)") }
            usleep(100_000)
        }
        throw ExporterFailed(reason: "not ready after 10 s")
    }

    struct ExporterFailed: Error { let reason: String }

    static func freePortForTests() throws -> Int { try freePort() }

    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                bind(fd, pointer, length)
                return getsockname(fd, pointer, &length)
            }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Reads one sample's value from text exposition output.
enum Scrape {
    static func value(_ text: String, _ name: String, _ labels: [String: String]) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
            let matches = labels.allSatisfy { line.contains("\($0.key)=\"\($0.value)\"") }
            if matches, let value = line.split(separator: " ").last.flatMap({ Double($0) }) { return value }
        }
        return nil
    }
}
