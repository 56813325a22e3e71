import Foundation
import GatewardenBPF
import GatewardenKernel
import GatewardenPolicy
import GatewardenCore
import GatewardenDataPlane

// gatewarden-list-bench: how long large allow and block lists take to load and to re-apply.
//
// For each list (blocklist, allowlist) and size (5,000 and 50,000 entries by default) it prints the
// median over several runs of
//   - `gatewarden load` end to end (policy parse, nftables dry runs, XDP maps, nftables transaction)
//     on a veth in a network namespace of its own: first with an empty list (what a load costs
//     whatever the lists), then with the list, a re-apply of the same policy, and a re-apply of a
//     policy with a tenth of the entries changed;
//   - the XDP layer alone: XDPMaps.apply into the maps of a freshly loaded program, and again;
//   - the nftables layer alone: the ruleset's apply transaction into an empty namespace, and again.
// Run as root in a private mount namespace (the end-to-end figures pin maps in bpffs):
//
//     swift build -c release --product gatewarden-list-bench --product gatewarden
//     sudo unshare -m --propagation private sh -c 'mount -t bpf bpf /sys/fs/bpf; .build/release/gatewarden-list-bench'
//         [--sizes 5000,50000] [--runs 5] [--gatewarden PATH]

struct Options {
    var sizes = [5_000, 50_000]
    var runs = 5
    var gatewarden = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("gatewarden").path

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let flag = iterator.next() {
            guard let value = iterator.next() else { Self.usage() }
            switch flag {
            case "--sizes":
                sizes = value.split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
                if sizes.isEmpty { Self.usage() }
            case "--runs":
                guard let value = Int(value), value > 0 else { Self.usage() }
                runs = value
            case "--gatewarden": gatewarden = value
            default: Self.usage()
            }
        }
    }

    static func usage() -> Never {
        FileHandle.standardError.write(Data("usage: gatewarden-list-bench [--sizes 5000,50000] [--runs N] [--gatewarden PATH]\n".utf8))
        exit(2)
    }
}

enum List: String, CaseIterable {
    case blocklist, allowlist

    /// `count` distinct IPv4 /32s, the first `changed` of them moved elsewhere (a re-apply that
    /// is not a no-op).
    func prefixes(_ count: Int, changed: Int = 0) -> [AddressPrefix] {
        (0..<count).map { index in
            let network = index < changed ? 11 : 10
            return try! AddressPrefix("\(network).\(index >> 16).\((index >> 8) & 255).\(index & 255)/32")
        }
    }

    func policy(_ prefixes: [AddressPrefix]) -> Policy {
        var policy = Policy.builtInDefault
        switch self {
        case .blocklist: policy.blocklist = prefixes
        case .allowlist: policy.allowlist = prefixes
        }
        return policy
    }

    func yaml(_ prefixes: [AddressPrefix]) -> String {
        let listed = "[" + prefixes.map(\.description).joined(separator: ", ") + "]"
        switch self {
        case .blocklist: return "blocklist: {entries: \(listed)}\n"
        case .allowlist: return "allowlist: \(listed)\n"
        }
    }
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

@discardableResult
func run(_ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let output = Pipe(), errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let problem = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw KernelError(operation: "\(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(problem)")
    }
    return text
}

/// A network namespace with a veth pair (XDP in generic mode on one end), deleted with `remove()`.
struct Lab {
    let name = "gwbench-lists-\(getpid())"
    let interface = "bench0"

    func create() throws {
        try run(["ip", "netns", "add", name])
        try run(["ip", "-n", name, "link", "add", interface, "type", "veth", "peer", "name", interface + "p"])
        try run(["ip", "-n", name, "link", "set", interface, "up"])
    }

    func remove() { _ = try? run(["ip", "netns", "del", name]) }
}

/// Figures of one (list, size): seconds per step, one value per run.
struct Figures {
    var steps: [String: [Double]] = [:]
    mutating func add(_ step: String, _ value: Double) { steps[step, default: []].append(value) }
}

let options = Options(CommandLine.arguments)
guard getuid() == 0 else {
    FileHandle.standardError.write(Data("gatewarden-list-bench: needs root (BPF maps, network namespaces)\n".utf8))
    exit(1)
}
let lab = Lab()
let policyFile = FileManager.default.temporaryDirectory.appendingPathComponent("gwbench-lists-\(getpid()).yaml")
defer { try? FileManager.default.removeItem(at: policyFile) }
/// What a load costs whatever the lists (verifier, nftables dry runs, attach): the rest is theirs.
let baseline = "gatewarden load (first, empty list)"
let order = [baseline, "gatewarden load (first)", "gatewarden load (same list again)", "gatewarden load (a tenth changed)",
             "XDP maps apply (first)", "XDP maps apply (same list again)", "nftables transaction (first)",
             "nftables transaction (same list again)"]

func measure() throws {
print("list       entries  step                                    median s   (runs)")
for list in List.allCases {
    for size in options.sizes {
        var figures = Figures()
        let prefixes = list.prefixes(size)
        let changed = list.prefixes(size, changed: size / 10)
        for _ in 0..<options.runs {
            // End to end, through the command an operator runs.
            try lab.create()
            defer { lab.remove() }
            let arguments = ["--interface", lab.interface, "--netns", lab.name, "--xdp-mode", "generic", "--policy", policyFile.path]
            try list.yaml([]).write(to: policyFile, atomically: true, encoding: .utf8)
            figures.add(baseline, try seconds { try run([options.gatewarden, "load"] + arguments) })
            try run([options.gatewarden, "unload", "--interface", lab.interface, "--netns", lab.name])
            try list.yaml(prefixes).write(to: policyFile, atomically: true, encoding: .utf8)
            figures.add(order[1], try seconds { try run([options.gatewarden, "load"] + arguments) })
            figures.add(order[2], try seconds { try run([options.gatewarden, "load"] + arguments) })
            try list.yaml(changed).write(to: policyFile, atomically: true, encoding: .utf8)
            figures.add(order[3], try seconds { try run([options.gatewarden, "load"] + arguments) })
            try run([options.gatewarden, "unload", "--interface", lab.interface, "--netns", lab.name])

            // The XDP layer alone, into the private maps of a program loaded for the purpose.
            let object = try BPFObject(elf: EmbeddedBPF.gatewardenXdp.bytes, name: XDPProgram.name)
            try object.setMaxEntries(1024, ofMap: XDPMaps.Name.sources)
            try object.setMaxEntries(1024, ofMap: XDPMaps.Name.subnets)
            try object.load()
            let maps = try XDPMaps(object: object)
            let policy = list.policy(prefixes)
            for step in order[4...5] {
                figures.add(step, try seconds { try maps.apply(policy.xdpLimits, allowlist: policy.allowlist, blocklist: policy.blocklist) })
            }

            // The nftables layer alone: the transaction `load` runs, into a namespace without the table.
            let namespace = try NetworkNamespace(named: lab.name)
            let nft = try NFTables(namespace: namespace)
            if try nft.tableExists(family: NFTablesRuleset.family, name: NFTablesRuleset.tableName) {
                try nft.run(NFTablesRuleset.deleteCommand)
            }
            let transaction = NFTablesRuleset(policy: policy).applyTransaction
            for step in order[6...7] {
                figures.add(step, try seconds { try NFTables(namespace: namespace).run(transaction) })
            }
        }
        for step in order {
            let values = figures.steps[step] ?? []
            let line = list.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)
                + String(size).padding(toLength: 9, withPad: " ", startingAt: 0)
                + step.padding(toLength: 40, withPad: " ", startingAt: 0)
                + String(format: "%8.3f", median(values)) + "   (" + values.map { String(format: "%.3f", $0) }.joined(separator: " ") + ")"
            print(line)
        }
    }
}
}

do {
    try measure()
} catch {
    FileHandle.standardError.write(Data("gatewarden-list-bench: \(error)\n".utf8))
    exit(1)
}
