import CLinux
import Foundation
import GatewardenKernel

/// Sends paced packets through BPF_PROG_TEST_RUN from one thread per CPU at once, so the
/// program's buckets see real cross-CPU contention on the real clock.
///
///     let result = try Flood(program: program, packets: frames, packetsPerSecond: 4000,
///                            duration: .seconds(2)).run()
struct Flood {
    let program: TestProgram
    /// Sent round-robin; each thread starts at a different offset.
    let packets: [[UInt8]]
    /// Total over all threads.
    let packetsPerSecond: Double
    let duration: Duration
    var cpus: [Int] = Array(0..<min(2, ProcessInfo.processInfo.activeProcessorCount))

    struct Result {
        var sent = 0
        var passed = 0
        var dropped = 0
        /// From the first packet to the last, seconds.
        var elapsed = 0.0
    }

    private final class Shared: @unchecked Sendable {
        let lock = NSLock()
        var result = Result()
        var error: Error?
        var starts: [UInt64] = []
        var ends: [UInt64] = []
    }

    func run() throws -> Result {
        let shared = Shared()
        let group = DispatchGroup()
        let perThread = packetsPerSecond / Double(cpus.count)
        let count = Int(perThread * Double(duration.components.seconds))
        let start = Self.monotonicNanoseconds() + 50_000_000  // everyone starts together, 50 ms from now
        for (index, cpu) in cpus.enumerated() {
            group.enter()
            let program = self.program, packets = self.packets
            let thread = Thread {
                defer { group.leave() }
                Self.pin(toCPU: cpu)
                var local = Result()
                let period = 1e9 / perThread
                do {
                    for k in 0..<count {
                        let due = start + UInt64(Double(k) * period)
                        while Self.monotonicNanoseconds() < due {}
                        let action = try program.run(packets[(k * cpus.count + index) % packets.count])
                        local.sent += 1
                        if action == .pass { local.passed += 1 } else if action == .drop { local.dropped += 1 }
                    }
                } catch {
                    shared.lock.withLock { shared.error = error }
                }
                let end = Self.monotonicNanoseconds()
                shared.lock.withLock {
                    shared.result.sent += local.sent
                    shared.result.passed += local.passed
                    shared.result.dropped += local.dropped
                    shared.ends.append(end)
                }
            }
            thread.start()
        }
        group.wait()
        if let error = shared.error { throw error }
        var result = shared.result
        result.elapsed = Double((shared.ends.max() ?? start) - start) / 1e9
        return result
    }

    static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// Pins the calling thread; BPF_PROG_TEST_RUN runs the program on the CPU it is called from.
    static func pin(toCPU cpu: Int) {
        var mask = [UInt64](repeating: 0, count: 16)
        mask[cpu / 64] |= 1 << UInt64(cpu % 64)
        _ = sched_setaffinity(0, UInt(mask.count * 8), &mask)
    }
}
