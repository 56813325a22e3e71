import Foundation

/// libmicrohttpd's messages on standard error, at most `burst` of them per `window`: a client
/// opening connection after connection past a limit must not write one line each to the journal.
/// What was held back is counted in one line when the next window opens.
final class ThrottledLog: @unchecked Sendable {
    private let burst: Int
    private let window: Duration
    private let sink: @Sendable (String) -> Void
    private let clock: @Sendable () -> ContinuousClock.Instant
    private let lock = NSLock()
    private var windowStart: ContinuousClock.Instant
    private var written = 0
    private var suppressed = 0

    init(burst: Int = 20, window: Duration = .seconds(60),
         sink: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) },
         clock: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.burst = burst
        self.window = window
        self.sink = sink
        self.clock = clock
        windowStart = clock()
    }

    func write(_ message: String) {
        let now = clock()
        var lines: [String] = []
        lock.withLock {
            if now - windowStart >= window {
                if suppressed > 0 {
                    lines.append("gatewarden: libmicrohttpd: \(suppressed) more messages held back in the last \(window)\n")
                }
                windowStart = now
                written = 0
                suppressed = 0
            }
            guard written < burst else {
                suppressed += 1
                return
            }
            written += 1
            let text = message.hasSuffix("\n") ? message : message + "\n"
            lines.append("gatewarden: libmicrohttpd: " + text)
        }
        lines.forEach(sink)
    }
}
