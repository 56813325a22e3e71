// gatewarden-feed-bench: how fast the TLS-session-reuse feed parses and judges nginx log lines, and how
// much memory it holds for many distinct sources. Prints figures; never fails for being slow.
//
//     swift run -c release gatewarden-feed-bench [lines]
//
// 1. Parse + judge, in memory: a realistic mix of lines (first requests over TLS, keep-alive repeats,
//    resumed sessions, plain HTTP, a few lines of another format) from 50,000 /24s, median of 3 runs,
//    beside a baseline measured in the same run: only splitting the same bytes into lines.
// 2. The same lines through the whole feed from a file (LogFollower reads, then parse + judge).
// 3. Resident memory added by judging 1 million and 10 million distinct sources (each in its own /24),
//    with the judge's default bound on tracked networks.
import Foundation
import GatewardenCore
import GatewardenEnforce
import GatewardenPolicy

let arguments = Array(CommandLine.arguments.dropFirst())
let lineCount = arguments.first.flatMap(Int.init) ?? 2_000_000
let start: Int64 = 1_800_000_000_000

/// A deterministic generator, so that runs compare.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

func makeLog(lines: Int) -> [UInt8] {
    var random = SplitMix(state: 42)
    var text = ""
    text.reserveCapacity(lines * 64)
    var connection = 1_000
    for index in 0..<lines {
        var roll = random.next() % 100
        let network = random.next() % 50_000
        // The first 100 /24s are bots: their first requests are all new sessions.
        if network < 100 && roll >= 30 { roll = 70 }
        let address = "\(10 + network / 65536 % 200).\(network / 256 % 256).\(network % 256).\(random.next() % 254 + 1)"
        let time = Double(start + Int64(index) * 200_000 / Int64(lines)) / 1000   // 200 s of log
        let stamp = String(format: "%.3f", time)
        switch roll {
        case 0..<2: text += "\(address) - - [01/Jan/2027:00:00:00 +0000] \"GET / HTTP/1.1\" 200 5\n"
        case 2..<7: text += "gw1 \(stamp) \(address) \(connection) 1 - - 200 0.001\n"
        case 7..<30: text += "gw1 \(stamp) \(address) \(connection) \(2 + roll % 5) . TLSv1.3 200 0.002\n"
        case 30..<70: text += "gw1 \(stamp) \(address) \(connection) 1 r TLSv1.3 200 0.001\n"
        default: text += "gw1 \(stamp) \(address) \(connection) 1 . TLSv1.2 429 0.000\n"
        }
        connection += 1 + Int(random.next() % 3)
    }
    return Array(text.utf8)
}

func seconds(_ body: () -> Void) -> Double {
    let begin = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

func forEachLine(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) -> Void) {
    bytes.withUnsafeBytes { all in
        guard let base = all.baseAddress else { return }
        var offset = 0
        while offset < all.count, let newline = memchr(base + offset, 0x0a, all.count - offset) {
            let end = base.distance(to: UnsafeRawPointer(newline))
            body(UnsafeRawBufferPointer(rebasing: all[offset..<end]))
            offset = end + 1
        }
    }
}

func configuration() -> SessionReuseJudge.Configuration {
    .init(minimumConnections: 15, newSessionRatio: 0.95, windowSeconds: 600, ipv4Prefix: 24, ipv6Prefix: 64)
}

// The child process of part 3.
if arguments.first == "memory", let sources = arguments.dropFirst().first.flatMap(Int.init) {
    measureMemory(sources: sources)
    exit(0)
}

let log = makeLog(lines: lineCount)
print("gatewarden-feed-bench: \(lineCount) lines, \(log.count / 1_000_000) MB, 50,000 /24s, 200 s of log")

// 1. In memory.
var baselineRuns: [Double] = [], judgedRuns: [Double] = []
var flaggedCount = 0
for _ in 0..<3 {
    var lines = 0
    baselineRuns.append(seconds { forEachLine(log) { _ in lines += 1 } })
    var judge = SessionReuseJudge(configuration: configuration())
    judge.advance(toMilliseconds: start + 200_000)
    var flagged = 0
    judgedRuns.append(seconds {
        forEachLine(log) { bytes in
            guard let line = try? NginxLogLine(parsing: bytes) else { return }
            if case .flagged = judge.judge(line) { flagged += 1 }
        }
    })
    flaggedCount = flagged
}
let splitRate = Double(lineCount) / median(baselineRuns)
let judgedRate = Double(lineCount) / median(judgedRuns)
print(String(format: "parse + judge (one core): median %.0f lines/s of 3 (runs: %@); split only: %.0f lines/s; judged at %.2fx the cost of splitting",
             judgedRate, judgedRuns.map { String(format: "%.3f s", $0) }.joined(separator: ", "), splitRate, splitRate / judgedRate))
print("  flags: \(flaggedCount) (100 of the 50,000 /24s never resume; each is flagged again once it has 15 more connections)")

// 2. Through the feed, from a file.
let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatewarden-feed-bench-\(getpid())")
try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: directory) }
var feedRuns: [Double] = []
for run in 0..<3 {
    let path = directory.appendingPathComponent("gatewarden-\(run).log").path
    let settings = TLSSessionReuseSettings(log: path)   // absent at start: read from its beginning
    let feed = TLSSessionReuseFeed(settings: settings)
    let now = Date(timeIntervalSince1970: Double(start + 200_000) / 1000)
    _ = feed.poll(now: now)
    FileManager.default.createFile(atPath: path, contents: Data(log))
    feedRuns.append(seconds {
        while feed.statistics.linesRead < UInt64(lineCount) { _ = feed.poll(now: now) }
    })
    try? FileManager.default.removeItem(atPath: path)
}
print(String(format: "feed from a file (read + split + parse + judge): median %.0f lines/s of 3", Double(lineCount) / median(feedRuns)))

// 3. Memory for distinct sources, each size in a fresh process (so freed memory of one run does not
// hide the next one's).
fflush(nil)   // our buffered lines before the children's
for sources in [1_000_000, 10_000_000] {
    let child = Process()
    child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    child.arguments = ["memory", "\(sources)"]
    try child.run()
    child.waitUntilExit()
}

func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
}

func measureMemory(sources: Int) {
    let before = residentBytes()
    var judge = SessionReuseJudge(configuration: configuration())
    judge.advance(toMilliseconds: start + 600_000)
    var untracked = 0
    let elapsed = seconds {
        for index in 0..<sources {
            // Each source in its own /24 (the worst case for the judge): 10.0.0.1, 10.0.1.1, ...
            let address = ClientAddress(high: 0, low: UInt64(0x0a00_0001 &+ UInt32(truncatingIfNeeded: index) << 8), isIPv4: true)
            let line = NginxLogLine(timeMilliseconds: start + Int64(index) * 600_000 / Int64(sources), address: address,
                                    connection: UInt64(1000 + index), connectionRequests: 1, session: .new, status: 200,
                                    requestTimeMilliseconds: 1)
            if judge.judge(line) == .ignored(.untracked) { untracked += 1 }
        }
    }
    let after = residentBytes()
    print(String(format: "%d distinct sources: RSS +%.1f MB, %d networks tracked (cap %d), %d untracked, %.0f lines/s",
                 sources, Double(after - before) / 1e6, judge.trackedNetworks, judge.configuration.maximumTrackedNetworks,
                 untracked, Double(sources) / elapsed))
    withExtendedLifetime(judge) {}
}
