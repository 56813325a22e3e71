import CGatewardenABI
import Foundation
import GatewardenKernel
import GatewardenDataPlane

// gatewarden-scrape-bench: what a scrape costs as the kernel state grows.
//
// In a lab namespace with Gatewarden loaded, it fills gw_sources with N tracked sources (one in
// twenty an offender, up to gw_offenders' 65,536) and a set in table inet gatewarden with M elements, then
// measures, in the same run:
//   - `gatewarden serve`: scrape latency (median, p99 over R scrapes) and its peak resident memory;
//   - the seed articles' approach: `nft -j list table` parsed by a Python script (nft side only);
//   - a per-key map walk (get_next_key + lookup per entry) instead of batch lookups.
//
//     swift build -c release && .build/release/gatewarden-scrape-bench [--scrapes 30]

let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("gatewarden").path
let scrapes = CommandLine.arguments.firstIndex(of: "--scrapes").flatMap { Int(CommandLine.arguments[$0 + 1]) } ?? 30
guard getuid() == 0 else {
    FileHandle.standardError.write(Data("gatewarden-scrape-bench: needs root\n".utf8))
    exit(1)
}

@discardableResult
func shell(_ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw BenchError(message: "\(arguments.joined(separator: " ")) failed") }
    return String(decoding: data, as: UTF8.self)
}

struct BenchError: Error { let message: String }

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

/// One HTTP GET over a fresh loopback connection; the full response read.
func scrape(port: UInt16) throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw BenchError(message: "connect failed") }
    let request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    _ = request.withCString { send(fd, $0, strlen($0), 0) }
    var total = 0
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = recv(fd, &buffer, buffer.count, 0)
        if count <= 0 { break }
        total += count
    }
    return total
}

let namespaceName = "gw-scrape-bench-\(getpid())"
let interface = "gwsb0"
try shell(["ip", "netns", "add", namespaceName])
defer { _ = try? shell(["ip", "netns", "del", namespaceName]) }
try shell(["ip", "link", "add", interface, "netns", namespaceName, "type", "veth", "peer", "name", "gwsb1", "netns", namespaceName])
try shell(["ip", "-n", namespaceName, "link", "set", interface, "up"])
try shell([binary, "load", "--interface", interface, "--netns", namespaceName])
defer { _ = try? shell([binary, "unload", "--interface", interface, "--netns", namespaceName]) }

let namespace = try NetworkNamespace(named: namespaceName)
let maps = try XDPInstance(layout: PinLayout(namespace: namespace, interface: interface)).maps()
let nft = try NFTables(namespace: namespace)
try nft.run("add set inet gatewarden bench_set { type ipv4_addr; size 65536; }")

var filledSources = 0
@MainActor func fillSources(to count: Int) throws {
    while filledSources < count {
        let i = filledSources + 1
        let address: [UInt8] = [10, UInt8(i >> 16 & 0xff), UInt8(i >> 8 & 0xff), UInt8(i & 0xff)]
        let dropped = UInt64(i % 20 == 0 ? i % 9973 + 1 : 0)
        try maps.sources.update(gw_bucket(tat_ns: 0, dropped_packets: dropped, list_verdict: 0), at: XDPMaps.key(address: address))
        // Every twentieth source is an offender, registered as the program does (up to the map's capacity).
        if dropped > 0 {
            let bound = UInt64(1) << UInt64(63 - dropped.leadingZeroBitCount)
            try maps.offenders.update(bound, at: gw_offender_key(addr: XDPMaps.key(address: address),
                                                                kind: GW_OFFENDER_SOURCE.rawValue))
        }
        filledSources += 1
    }
}

var filledElements = 0
@MainActor func fillSet(to count: Int) throws {
    if count < filledElements {
        try nft.run("flush set inet gatewarden bench_set")
        filledElements = 0
    }
    while filledElements < count {
        let chunk = (filledElements..<min(count, filledElements + 4096)).map { i in "172.\(16 + i >> 16).\(i >> 8 & 0xff).\(i & 0xff)" }
        try nft.run("add element inet gatewarden bench_set { \(chunk.joined(separator: ", ")) }")
        filledElements += chunk.count
    }
}

struct Row {
    var sources: Int
    var elements: Int
    var median = 0.0, p99 = 0.0, peakRSS = 0.0, rss = 0.0, seedNFT = 0.0, perKeyWalk = 0.0, batchWalk = 0.0
}

var rows: [Row] = []
// Sources only grow (an LRU map is not emptied cheaply); the set shrinks by a flush.
for (sources, elements) in [(1_000, 1_000), (1_000, 65_000), (100_000, 1_000), (1_000_000, 1_000), (1_000_000, 65_000)] {
    try fillSources(to: sources)
    try fillSet(to: elements)
    var row = Row(sources: sources, elements: elements)

    let port = UInt16(20000 + Int(getpid()) % 20000)
    let serve = Process()
    serve.executableURL = URL(fileURLWithPath: binary)
    serve.arguments = ["serve", "--netns", namespaceName, "--web.listen-address", "127.0.0.1:\(port)"]
    serve.standardError = FileHandle.nullDevice
    try serve.run()
    usleep(500_000)
    _ = try scrape(port: port) // warm
    var latencies: [Double] = []
    for _ in 0..<scrapes { latencies.append(try seconds { _ = try scrape(port: port) }) }
    row.median = percentile(latencies, 0.5)
    row.p99 = percentile(latencies, 0.99)
    let status = (try? String(contentsOfFile: "/proc/\(serve.processIdentifier)/status", encoding: .utf8)) ?? ""
    func kilobytes(_ field: String) -> Double {
        status.split(separator: "\n").first { $0.hasPrefix(field) }
            .flatMap { Double($0.split(separator: " ").dropFirst().first ?? "") }.map { $0 * 1024 } ?? 0
    }
    row.peakRSS = kilobytes("VmHWM:")
    row.rss = kilobytes("VmRSS:")
    serve.terminate()
    serve.waitUntilExit()

    // The seed approach: the nft CLI's JSON, parsed by a script (it covers nftables only).
    var seed: [Double] = []
    for _ in 0..<5 {
        seed.append(try seconds {
            try shell(["ip", "netns", "exec", namespaceName, "sh", "-c",
                       "nft -j list table inet gatewarden | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d[\"nftables\"]))'"])
        })
    }
    row.seedNFT = percentile(seed, 0.5)

    // Walking gw_sources one key at a time versus in batches.
    row.perKeyWalk = try seconds {
        var count = 0
        for key in try maps.sources.keys(as: gw_addr.self) where try maps.sources.value(at: key, as: gw_bucket.self) != nil {
            count += 1
        }
    }
    row.batchWalk = try seconds { try maps.forEachBucket(in: maps.sources) { _, _ in } }
    rows.append(row)
    print("measured \(sources) sources, \(elements) set elements")
}

print("\ngatewarden-scrape-bench: \(scrapes) scrapes per row over loopback; times in ms; the exporter's RSS after them, and its peak")
print("sources    set elems   scrape median   scrape p99   RSS MB   peak RSS MB   seed nft+python   per-key walk   batch walk")
for row in rows {
    print(String(format: "%9d  %10d  %14.1f  %11.1f  %7.1f  %12.1f  %16.1f  %13.1f  %11.1f",
                 row.sources, row.elements, row.median * 1000, row.p99 * 1000, row.rss / 1_048_576, row.peakRSS / 1_048_576,
                 row.seedNFT * 1000, row.perKeyWalk * 1000, row.batchWalk * 1000))
}
