import Foundation
import GatewardenBenchBPF
import GatewardenKernel
import GatewardenCore
import GatewardenDataPlane

// gatewarden-bench: nanoseconds per packet through BPF_PROG_TEST_RUN, for
//   - an empty XDP_PASS program (the floor),
//   - a naive fixed-window per-source limiter, the seed articles' approach (the baseline),
//   - Gatewarden's program, on its full path (allow and block tries populated, both buckets charged),
// for one hot source (one packet repeated in the kernel) and for a spoofed flood from N random
// sources. The flood runs inside the kernel too: a harness program (bpf/bench/flood_harness.c)
// writes a new source into the packet before every repeat and tail-calls the contender, so the
// figure is per packet of a back-to-back flood. `--per-call` adds the older, pessimistic mode: one
// syscall per packet, which cools the caches between packets. Every figure is a median over several
// runs made in the same process, contenders interleaved, so the ratios compare like with like.
//
//     swift build -c release --product gatewarden-bench && sudo .build/release/gatewarden-bench
//         [--sources 1000000] [--runs 7] [--hot-repeat 1000000] [--per-call]

struct Options {
    var sources = 1_000_000
    var runs = 7
    var hotRepeat: UInt32 = 1_000_000
    var perCall = false

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let flag = iterator.next() {
            if flag == "--per-call" {
                perCall = true
                continue
            }
            let value = iterator.next().flatMap { Int($0) }
            switch (flag, value) {
            case ("--sources", let value?) where value > 0: sources = value
            case ("--runs", let value?) where value > 0: runs = value
            case ("--hot-repeat", let value?) where value > 0: hotRepeat = UInt32(value)
            default:
                FileHandle.standardError.write(Data(
                    "usage: gatewarden-bench [--sources N] [--runs N] [--hot-repeat N] [--per-call]\n".utf8))
                exit(2)
            }
        }
    }
}

/// A program loaded (not attached) for test runs.
struct Contender {
    let name: String
    let object: BPFObject
    let runner: ProgramTestRun

    init(name: String, elf: EmbeddedBPF.Object, program: String, configure: (BPFObject) throws -> Void = { _ in }) throws {
        self.name = name
        object = try BPFObject(elf: elf.bytes, name: program)
        try object.load()
        try configure(object)
        runner = ProgramTestRun(programFD: try object.programDescriptor(named: program))
    }
}

/// TCP SYN to 443 from `source`, with IHL 5.
func frame(source: UInt32) -> [UInt8] {
    var bytes: [UInt8] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]
    bytes += [0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0]
    bytes += withUnsafeBytes(of: source.bigEndian, Array.init) + [192, 0, 2, 1]
    bytes += [0xc3, 0x50, 0x01, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]
    return bytes
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// `frame` with its IPv4 header checksum filled in: the SYN cookie path answers only well-formed headers.
func withHeaderChecksum(_ frame: [UInt8]) -> [UInt8] {
    var bytes = frame
    bytes[24] = 0; bytes[25] = 0
    var sum: UInt32 = 0
    for offset in stride(from: 14, to: 34, by: 2) { sum += UInt32(bytes[offset]) << 8 | UInt32(bytes[offset + 1]) }
    while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
    let checksum = ~UInt16(sum)
    bytes[24] = UInt8(checksum >> 8); bytes[25] = UInt8(checksum & 0xff)
    return bytes
}

/// One packet repeated in the kernel: the kernel's mean ns per run.
func hotSource(_ contender: Contender, repeat count: UInt32) throws -> Double {
    Double(try contender.runner.run(packet: frame(source: 0xC000_0207), repeatCount: count).nanosecondsPerRun)
}

/// A new random source per packet, one run each: the mean of the kernel's per-run times.
func randomSources(_ contender: Contender, count: Int, seed: UInt64) throws -> Double {
    var generator = SplitMix64(seed: seed)
    var total: UInt64 = 0
    var packet = frame(source: 0)
    for _ in 0..<count {
        let source = UInt32(truncatingIfNeeded: generator.next())
        withUnsafeBytes(of: source.bigEndian) { packet.replaceSubrange(26..<30, with: $0) }
        total += UInt64(try contender.runner.run(packet: withHeaderChecksum(packet)).nanosecondsPerRun)
    }
    return Double(total) / Double(count)
}

/// A small, fast, seedable generator: every contender sees the same source sequence.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func gatewarden(name: String, limits: XDPLimits) throws -> Contender {
    try Contender(name: name, elf: EmbeddedBPF.gatewardenXdp, program: XDPProgram.name) { object in
        let maps = try XDPMaps(object: object)
        // Populated lists: the full path includes both trie lookups.
        try maps.apply(limits, allowlist: [try AddressPrefix("203.0.113.0/24")])
        try maps.block(try AddressPrefix("198.51.100.0/24"), for: nil)
    }
}

let options = Options(CommandLine.arguments)
guard getuid() == 0 else {
    FileHandle.standardError.write(Data("gatewarden-bench: needs root (loads BPF programs)\n".utf8))
    exit(1)
}

let generous = XDPLimits(source: .init(packetsPerSecond: 1_000_000_000, burst: 1_000_000_000),
                         subnet: .init(packetsPerSecond: 1_000_000_000, burst: 1_000_000_000),
                         ipv4SubnetPrefix: 24, ipv6SubnetPrefix: 64, protectedPorts: [80, 443])
print("gatewarden-bench: kernel \(ProcessInfo.processInfo.operatingSystemVersionString), "
    + "\(ProcessInfo.processInfo.activeProcessorCount) CPUs, median of \(options.runs) runs")

/// The same limits in observe mode: over a limit is counted as would_drop and passed.
func observing(_ limits: XDPLimits) -> XDPLimits {
    var copy = limits
    copy.observe = true
    return copy
}

func emptyLists(_ limits: XDPLimits) -> (BPFObject) throws -> Void {
    { object in try XDPMaps(object: object).apply(limits, allowlist: []) }
}

// One hot source. Contenders take turns within each run, so drift on a noisy machine hits all alike.
let hotContenders: [Contender] = [
    try Contender(name: "empty XDP_PASS", elf: EmbeddedBPF.xdpPass, program: "xdp_pass"),
    try Contender(name: "naive fixed window", elf: EmbeddedBPF.naiveFixedWindow, program: "naive_fixed_window"),
    try gatewarden(name: "gatewarden, passed (full path)", limits: generous),
    try gatewarden(name: "gatewarden, over limit (dropped)", limits: .default),
    try gatewarden(name: "gatewarden, over limit (observe)", limits: observing(.default)),
    try Contender(name: "gatewarden, passed, lists empty", elf: EmbeddedBPF.gatewardenXdp, program: XDPProgram.name,
                  configure: emptyLists(generous)),
]
var hotSamples = [[Double]](repeating: [], count: hotContenders.count)
for contender in hotContenders { _ = try hotSource(contender, repeat: 10_000) } // warm the maps
for _ in 0..<options.runs {
    for (index, contender) in hotContenders.enumerated() {
        hotSamples[index].append(try hotSource(contender, repeat: options.hotRepeat))
    }
}
let hot = zip(hotContenders.map(\.name), hotSamples.map(median)).map { ($0, $1) }

// A spoofed flood: a fresh program per run, so every run starts from empty maps.
let floodContenders: [(String, () throws -> Contender)] = [
    ("empty XDP_PASS", { try Contender(name: "", elf: EmbeddedBPF.xdpPass, program: "xdp_pass") }),
    ("naive fixed window", { try Contender(name: "", elf: EmbeddedBPF.naiveFixedWindow, program: "naive_fixed_window") }),
    ("gatewarden (default limits)", { try gatewarden(name: "", limits: .default) }),
    ("gatewarden (default limits, lists empty)", {
        try Contender(name: "", elf: EmbeddedBPF.gatewardenXdp, program: XDPProgram.name, configure: emptyLists(.default))
    }),
]

/// The in-kernel flood: the harness tail-calls whatever program sits in its slot.
struct FloodHarness {
    let object: BPFObject
    let runner: ProgramTestRun
    let slot: BPFMap

    init() throws {
        object = try BPFObject(elf: EmbeddedBPF.floodHarness.bytes, name: "flood_harness")
        try object.load()
        runner = ProgramTestRun(programFD: try object.programDescriptor(named: "flood_harness"))
        slot = try BPFMap(borrowing: try object.mapDescriptor(named: "contender"))
    }

    /// `count` packets from distinct sources, the `first`-th source onwards: the kernel's mean ns per packet.
    func run(_ contender: Contender, count: Int, first: UInt32) throws -> Double {
        try slot.update(contender.runner.programFD, at: UInt32(0))
        var packet = frame(source: 0)
        withUnsafeBytes(of: first.bigEndian) { packet.replaceSubrange(38..<42, with: $0) } // TCP sequence: the counter
        let result = try runner.run(packet: packet, repeatCount: UInt32(count))
        // The harness relies on packet writes persisting between repeats; prove they did.
        let counter = result.packet[38..<42].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard result.action != .aborted, counter == first &+ UInt32(count) else {
            throw BenchError("flood harness: \(count) runs advanced the counter by \(counter &- first), "
                + "action \(String(describing: result.action)); the figure would not be per distinct source")
        }
        return Double(result.nanosecondsPerRun)
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

let harness = try FloodHarness()
var floodSamples = [[Double]](repeating: [], count: floodContenders.count)
for run in 0..<options.runs {
    for (index, contender) in floodContenders.enumerated() {
        let first = UInt32(truncatingIfNeeded: run * options.sources)
        floodSamples[index].append(try harness.run(try contender.1(), count: options.sources, first: first))
    }
}
let flood = zip(floodContenders.map(\.0), floodSamples.map(median)).map { ($0, $1) }

var perCallFlood: [(String, Double)] = []
if options.perCall {
    var samples = [[Double]](repeating: [], count: floodContenders.count)
    for run in 0..<options.runs {
        for (index, contender) in floodContenders.enumerated() {
            samples[index].append(try randomSources(try contender.1(), count: options.sources, seed: UInt64(run + 1)))
        }
    }
    perCallFlood = zip(floodContenders.map(\.0), samples.map(median)).map { ($0, $1) }
}

func table(_ title: String, _ rows: [(String, Double)]) {
    let floor = rows[0].1, naive = rows[1].1
    print("\n\(title)")
    print("  " + "program".padding(toLength: 42, withPad: " ", startingAt: 0) + "ns/packet   minus empty   vs naive")
    for (name, value) in rows {
        let columns = [String(format: "%9.1f", value), String(format: "%11.1f", value - floor),
                       String(format: "%9.2fx", value / naive)]
        print("  " + name.padding(toLength: 42, withPad: " ", startingAt: 0) + columns.joined(separator: "   "))
    }
}
// SYNs answered in XDP with a SYN cookie (generic mode's default). The answer rewrites the frame, so it cannot
// be repeated in place: one test run per SYN, from distinct sources, for every contender alike.
var withCookies = XDPLimits.default
withCookies.synCookies = .init(ipv4MSS: 1460, ipv6MSS: 1440, windowScale: 7, timestamps: true, selectiveAcknowledgements: true,
                               interfaceMAC: [2, 0, 0, 0, 0, 1]) // the frame's destination
let answering = try gatewarden(name: "", limits: withCookies)
let answered = try answering.runner.run(packet: withHeaderChecksum(frame(source: 0x0808_0808))).action == .tx
let cookieContenders: [(String, () throws -> Contender)] = [
    floodContenders[0], floodContenders[1], floodContenders[2],
    (answered ? "gatewarden, SYN answered with a cookie"
              : "gatewarden, cookies on, host forwards", {
        try gatewarden(name: "", limits: withCookies)
    }),
]
let cookieSources = min(options.sources, 100_000)
var cookieSamples = [[Double]](repeating: [], count: cookieContenders.count)
for run in 0..<options.runs {
    for (index, contender) in cookieContenders.enumerated() {
        cookieSamples[index].append(try randomSources(try contender.1(), count: cookieSources, seed: UInt64(run + 100)))
    }
}
let cookies = zip(cookieContenders.map(\.0), cookieSamples.map(median)).map { ($0, $1) }

table("One hot source (\(options.hotRepeat) repeats per run):", hot)
table("Spoofed flood, \(options.sources) distinct sources, back to back in the kernel (harness cost included):", flood)
if options.perCall {
    table("Spoofed flood, \(options.sources) random sources, one syscall per packet:", perCallFlood)
}
table("SYNs from \(cookieSources) distinct sources, one test run each (its own overhead in every row):", cookies)

