import Foundation
import Testing
@testable import GatewardenServe

private final class Lines: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func append(_ line: String) { lock.withLock { list.append(line) } }
    var all: [String] { lock.withLock { list } }
}

private final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var instant = ContinuousClock.now
    var now: ContinuousClock.Instant { lock.withLock { instant } }
    func advance(_ duration: Duration) { lock.withLock { instant += duration } }
}

@Suite("libmicrohttpd's messages")
struct ThrottledLogTests {
    @Test("at most a burst per window; what was held back is counted when the next window opens")
    func throttled() {
        let lines = Lines(), clock = ManualClock()
        let log = ThrottledLog(burst: 3, window: .seconds(60), sink: lines.append, clock: { clock.now })
        for index in 0..<100 { log.write("refused \(index)") }
        #expect(lines.all == (0..<3).map { "gatewarden: libmicrohttpd: refused \($0)\n" })

        clock.advance(.seconds(61))
        log.write("later\n")
        #expect(lines.all.dropFirst(3) == [
            "gatewarden: libmicrohttpd: 97 more messages held back in the last 60.0 seconds\n",
            "gatewarden: libmicrohttpd: later\n",
        ])
    }
}
