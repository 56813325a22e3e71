import Foundation
import GatewardenCore
import GatewardenDataPlane
import GatewardenKernel

// gatewarden-ban-bench: how fast bans go into each kernel layer, and how long a restore takes.
//
// In a lab namespace with Gatewarden loaded (blocklist.size 262144), it writes N /32 bans into the
// XDP blocklist and into nftables' ban set through the same sinks the enforce loop uses, each layer
// alone and timed; then a full check of both layers against what they should hold (what the loop does
// once a minute), which must write nothing. Medians of --runs runs, each into empty layers.
//
//     swift build -c release && .build/release/gatewarden-ban-bench [--bans 100000] [--runs 3]

let arguments = CommandLine.arguments
func option(_ name: String, _ fallback: Int) -> Int {
    arguments.firstIndex(of: name).flatMap { arguments.indices.contains($0 + 1) ? Int(arguments[$0 + 1]) : nil } ?? fallback
}
let count = option("--bans", 100_000), runs = option("--runs", 3)
let binary = URL(fileURLWithPath: arguments[0]).deletingLastPathComponent().appendingPathComponent("gatewarden").path
guard getuid() == 0 else {
    FileHandle.standardError.write(Data("gatewarden-ban-bench: needs root\n".utf8))
    exit(1)
}

@discardableResult
func run(_ command: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = command
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw KernelError(operation: "\(command.joined(separator: " ")) failed") }
    return String(decoding: data, as: UTF8.self)
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

let namespaceName = "gw-ban-bench-\(getpid())", interface = "gwbb0"
let policy = FileManager.default.temporaryDirectory.appendingPathComponent("\(namespaceName).yaml").path
let instance = ["--interface", interface, "--netns", namespaceName]
func cleanUp() {
    _ = try? run([binary, "unload"] + instance)
    _ = try? run(["ip", "netns", "del", namespaceName])
    try? FileManager.default.removeItem(atPath: policy)
}
signal(SIGINT) { _ in
    _ = try? run([binary, "unload", "--interface", "gwbb0", "--netns", "gw-ban-bench-\(getpid())"])
    _ = try? run(["ip", "netns", "del", "gw-ban-bench-\(getpid())"])
    exit(130)
}

do {
    defer { cleanUp() }
    try run(["ip", "netns", "add", namespaceName])
    try run(["ip", "-n", namespaceName, "link", "add", interface, "type", "veth", "peer", "name", "gwbb1"])
    for name in [interface, "gwbb1"] { try run(["ip", "-n", namespaceName, "link", "set", name, "up"]) }
    try "blocklist: {size: 262144}\n".write(toFile: policy, atomically: true, encoding: .utf8)
    try run([binary, "load", "--xdp-mode", "generic", "--policy", policy] + instance)

    let namespace = try NetworkNamespace(optionalName: namespaceName)
    let xdp = XDPBanSink(namespace: namespace), nft = NFTablesBanSink(namespace: namespace)
    let expiry = Date().addingTimeInterval(3600)
    let bans = Dictionary(uniqueKeysWithValues: try (0..<count).map {
        (try AddressPrefix("10.\(($0 >> 16) & 255).\(($0 >> 8) & 255).\($0 & 255)"), Optional(expiry))
    })
    var xdpTimes: [Double] = [], nftTimes: [Double] = [], checkTimes: [Double] = []
    var rewritten = 0
    for _ in 0..<runs {
        try xdp.lift(Array(bans.keys), for: [.enforce], lastHolder: true)
        try run(["ip", "netns", "exec", namespaceName, "nft", "flush", "set", "inet", "gatewarden", "block_v4"])
        xdpTimes.append(try seconds { _ = try xdp.apply([.enforce: bans], now: Date()) })
        nftTimes.append(try seconds { _ = try nft.apply([.enforce: bans], now: Date()) })
        checkTimes.append(try seconds { rewritten += try xdp.apply([.enforce: bans], now: Date()) + nft.apply([.enforce: bans], now: Date()) })
    }
    let xdpMedian = median(xdpTimes), nftMedian = median(nftTimes), checkMedian = median(checkTimes)
    print("gatewarden-ban-bench: \(count) bans, medians of \(runs) runs (seconds)")
    print("layer     write    bans/s    full check")
    print(String(format: "xdp       %6.2f  %8.0f", xdpMedian, Double(count) / xdpMedian))
    print(String(format: "nftables  %6.2f  %8.0f", nftMedian, Double(count) / nftMedian))
    print(String(format: "both      %6.2f  %8.0f  %6.2f (rewrote %d)", xdpMedian + nftMedian, Double(count) / (xdpMedian + nftMedian),
                 checkMedian, rewritten))
} catch {
    FileHandle.standardError.write(Data("gatewarden-ban-bench: \(error)\n".utf8))
    exit(1)
}
