import Foundation

/// Raw HTTP/1.1 over loopback, for what curl cannot do: choose the source address (all of
/// 127.0.0.0/8 is local, so each address is a distinct client to the server) and send a request
/// one byte at a time.
enum LoopbackClient {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    struct Reply {
        let status: Int
        let head: String
        let body: String
    }

    /// A connected TCP socket from `source` to 127.0.0.1:`port`, with `timeout` on each receive.
    static func connect(port: UInt16, from source: String = "127.0.0.1", timeout: Double = 5) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var local = address(source, port: 0)
        var remote = address("127.0.0.1", port: port)
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, connected == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "connect from \(source): \(reason)")
        }
        return fd
    }

    /// One GET on a new connection (closed afterwards); throws when no whole reply comes in time.
    static func get(port: UInt16, path: String = "/metrics", from source: String = "127.0.0.1",
                    headers: [String] = [], timeout: Double = 5) throws -> Reply {
        let fd = try connect(port: port, from: source, timeout: timeout)
        defer { close(fd) }
        let request = (["GET \(path) HTTP/1.1", "Host: 127.0.0.1", "Connection: close"] + headers + ["", ""])
            .joined(separator: "\r\n")
        guard send(fd, Array(request.utf8), request.utf8.count, Int32(MSG_NOSIGNAL)) == request.utf8.count else {
            throw Failure(description: "send: \(String(cString: strerror(errno)))")
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count == 0 { break }
            guard count > 0 else { throw Failure(description: "no whole reply within \(timeout) s (\(received.count) bytes)") }
            received += buffer[0..<count]
        }
        let text = String(decoding: received, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n"),
              let status = text.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap({ Int($0) }) else {
            throw Failure(description: "not an HTTP reply: \(text.prefix(80))")
        }
        return Reply(status: status, head: String(text[..<split.lowerBound]), body: String(text[split.upperBound...]))
    }

    /// Whether the server has closed `fd` (end of file or reset), without waiting.
    static func isClosedByServer(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        let count = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
    }

    private static func address(_ text: String, port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr(text)
        return address
    }
}

/// Slow clients, each sending the start of a request and then one more header byte every
/// `interval`, never finishing it: what starved the exporter. A bounded set of sockets, all
/// closed by `stop()`.
final class TricklingClients: @unchecked Sendable {
    private let lock = NSLock()
    private var sockets: [Int32]
    private var stopping = false
    private let stopped = DispatchSemaphore(value: 0)

    /// `count` clients to 127.0.0.1:`port`, the i-th from `sources[i % sources.count]`.
    init(count: Int, port: UInt16, sources: [String], interval: Double) throws {
        sockets = []
        do {
            for index in 0..<count {
                let fd = try LoopbackClient.connect(port: port, from: sources[index % sources.count])
                sockets.append(fd)
                let start = Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".utf8)
                _ = send(fd, start, start.count, Int32(MSG_NOSIGNAL))
            }
        } catch {
            sockets.forEach { close($0) }
            throw error
        }
        Thread { [self] in
            while lock.withLock({ !stopping }) {
                lock.withLock {
                    for fd in sockets { _ = send(fd, "a", 1, Int32(MSG_NOSIGNAL)) }
                }
                usleep(useconds_t(interval * 1e6))
            }
            stopped.signal()
        }.start()
    }

    /// Clients whose connection the server has closed.
    var closedByServer: Int {
        lock.withLock { sockets.filter(LoopbackClient.isClosedByServer).count }
    }

    func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopping = true }
            return !stopping
        }
        guard first else { return }
        stopped.wait()
        lock.withLock { sockets.forEach { close($0) } }
    }

    deinit { stop() }
}
