import Foundation
import GatewardenBenchBPF
import GatewardenKernel

// gatewarden-bench: nanoseconds per packet through BPF_PROG_TEST_RUN, for
//   - an empty XDP_PASS program (the floor),
//   - a naive fixed-window per-source limiter, the seed articles' approach (the baseline),
//   - Gatewarden's program, on its full path (allow and block tries populated, both buckets charged),
// for one hot source (one packet repeated in the kernel) and for a spoofed flood from random
// sources (a new source on every packet, each a separate run). Every figure is a median over
// several runs made in the same process, so the ratios compare like with like.
//
//     swift run -c release gatewarden-bench [--sources 1000000] [--runs 5]

struct Options {
    var sources = 1_000_000
    var runs = 5
    var hotRepeat: UInt32 = 1_000_000

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let flag = iterator.next() {
            let value = iterator.next().flatMap { Int($0) }
            switch (flag, value) {
            case ("--sources", let value?): sources = value
            case ("--runs", let value?): runs = value
            case ("--hot-repeat", let value?): hotRepeat = UInt32(value)
            default:
                FileHandle.standardError.write(Data("usage: gatewarden-bench [--sources N] [--runs N] [--hot-repeat N]\n".utf8))
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
        total += UInt64(try contender.runner.run(packet: packet).nanosecondsPerRun)
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
    try Contender(name: name, elf: EmbeddedBPF.gatewardenXdp, program: "gatewarden_xdp") { object in
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

func emptyLists(_ limits: XDPLimits) -> (BPFObject) throws -> Void {
    { object in try XDPMaps(object: object).apply(limits, allowlist: []) }
}

// One hot source. Contenders take turns within each run, so drift on a noisy machine hits all alike.
let hotContenders: [Contender] = [
    try Contender(name: "empty XDP_PASS", elf: EmbeddedBPF.xdpPass, program: "xdp_pass"),
    try Contender(name: "naive fixed window", elf: EmbeddedBPF.naiveFixedWindow, program: "naive_fixed_window"),
    try gatewarden(name: "gatewarden, passed (full path)", limits: generous),
    try gatewarden(name: "gatewarden, over limit (dropped)", limits: .default),
    try Contender(name: "gatewarden, passed, lists empty", elf: EmbeddedBPF.gatewardenXdp, program: "gatewarden_xdp",
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
        try Contender(name: "", elf: EmbeddedBPF.gatewardenXdp, program: "gatewarden_xdp", configure: emptyLists(.default))
    }),
]
var floodSamples = [[Double]](repeating: [], count: floodContenders.count)
for run in 0..<options.runs {
    for (index, contender) in floodContenders.enumerated() {
        floodSamples[index].append(try randomSources(try contender.1(), count: options.sources, seed: UInt64(run + 1)))
    }
}
let flood = zip(floodContenders.map(\.0), floodSamples.map(median)).map { ($0, $1) }

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
table("One hot source (\(options.hotRepeat) repeats per run):", hot)
table("Spoofed flood, \(options.sources) random sources (one run per packet):", flood)

