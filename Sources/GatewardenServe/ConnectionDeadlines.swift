import Foundation

/// Closes connections that take too long to send a request or to take a response, however
/// steadily they trickle bytes.
///
/// libmicrohttpd's connection timeout counts idleness only: a client sending one header byte every
/// few seconds keeps its connection, and enough of them hold every connection the server allows.
/// Here a connection gets a deadline when it is accepted, when its response is queued and when
/// that response has been sent (the wait for the next request on a kept-alive connection); while
/// its request is being answered it has none, the collection being bounded by its own timeout.
/// A reaper thread shuts overdue sockets down; libmicrohttpd then sees the client gone and closes
/// the connection.
///
/// Descriptor numbers are reused as soon as libmicrohttpd closes a socket. It closes one only after
/// the close notification, which takes the connection out of this table under the lock the reaper
/// holds while it calls `shutdown`, so the reaper never shuts down a newer connection's socket.
final class ConnectionDeadlines: @unchecked Sendable {
    private struct Entry {
        var socket: Int32
        var deadline: ContinuousClock.Instant?
    }

    let limit: Duration
    private let condition = NSCondition()
    private var entries: [UInt: Entry] = [:]
    private var stopping = false
    private let reaperStopped = DispatchSemaphore(value: 0)

    init(limit: Duration) {
        self.limit = limit
        let reaper = Thread { self.reap() }
        reaper.name = "gatewarden-deadlines"
        reaper.start()
    }

    /// Connections accepted and not yet closed.
    var openCount: Int { condition.withLock { entries.count } }

    /// A connection was accepted: it has `limit` to send its request.
    func opened(_ connection: OpaquePointer, socket: Int32) {
        guard socket >= 0 else { return }
        condition.withLock { entries[key(connection)] = Entry(socket: socket, deadline: .now + limit) }
        condition.signal()
    }

    /// The request is being answered: no deadline until the response is queued.
    func suspend(_ connection: OpaquePointer) {
        condition.withLock { entries[key(connection)]?.deadline = nil }
    }

    /// A response was queued or sent: the client has `limit` to take it, or to send its next request.
    func restart(_ connection: OpaquePointer) {
        condition.withLock { entries[key(connection)]?.deadline = .now + limit }
        condition.signal()
    }

    /// libmicrohttpd is about to close the socket.
    func closed(_ connection: OpaquePointer) {
        condition.withLock { _ = entries.removeValue(forKey: key(connection)) }
    }

    /// Ends the reaper; later calls do nothing.
    func stop() {
        let alreadyStopping = condition.withLock { () -> Bool in
            defer { stopping = true }
            return stopping
        }
        guard !alreadyStopping else { return }
        condition.signal()
        reaperStopped.wait()
    }

    private func key(_ connection: OpaquePointer) -> UInt { UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(connection))) }

    private func reap() {
        condition.lock()
        while !stopping {
            let now = ContinuousClock.now
            var earliest: ContinuousClock.Instant?
            for (key, entry) in entries {
                guard let deadline = entry.deadline else { continue }
                if deadline <= now {
                    // Wakes libmicrohttpd's poll on this socket with end-of-file both ways.
                    shutdown(entry.socket, Int32(SHUT_RDWR))
                    entries[key]?.deadline = nil
                } else if earliest.map({ deadline < $0 }) ?? true {
                    earliest = deadline
                }
            }
            // At least once a second, so a clock step cannot leave the reaper asleep.
            let wait = min(earliest.map { now.duration(to: $0) } ?? .seconds(1), .seconds(1))
            _ = condition.wait(until: Date(timeIntervalSinceNow: wait.inSeconds))
        }
        condition.unlock()
        reaperStopped.signal()
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
