import Foundation
import GatewardenServe
import GatewardenKernel
import GatewardenPolicy
import GatewardenTestSupport
import GatewardenCore

// gatewarden-fuzz: feeds broken and edge-case policies and web configs (generated from a seed by
// GatewardenTestSupport) to the parsers, and every policy they accept to the renderers (the
// nftables ruleset and transaction, the XDP configuration). Nothing from a file may trap.
//
//     gatewarden-fuzz [--seconds N] [--seed N]   the generated corpus, then random mutations until N seconds
//     gatewarden-fuzz --show NAME                 the bytes of input NAME, to reproduce a failure
//     gatewarden-fuzz [--web-config] FILE...      these files
//
// Before each input it prints `case NAME`: a trap kills the process, so its last line names the
// input that caused it. Exit 0: nothing trapped and every refusal named a place (line and column
// from 1) and a key; 1: the inputs that broke that rule are printed.

struct Options {
    var seconds = 20.0
    var seed: UInt64 = 11
    var show: String?
    var webConfig = false
    var files: [String] = []
    /// An input slower than this is a failure: a parser that hangs is as bad as one that traps.
    var maximumSecondsPerInput = 10.0

    init(_ arguments: [String]) {
        var remaining = arguments[...]
        func value<T: LosslessStringConvertible>(_ type: T.Type = T.self) -> T {
            guard let text = remaining.popFirst(), let value = T(text) else { Self.usage() }
            return value
        }
        while let argument = remaining.popFirst() {
            switch argument {
            case "--seconds": seconds = value()
            case "--seed": seed = value()
            case "--max-input-seconds": maximumSecondsPerInput = value()
            case "--show": show = value(String.self)
            case "--web-config": webConfig = true
            case "--help", "-h": Self.usage(status: 0)
            default: files.append(argument)
            }
        }
    }

    static func usage(status: Int32 = 2) -> Never {
        FileHandle.standardError.write(Data("""
            usage: gatewarden-fuzz [--seconds N] [--seed N] [--max-input-seconds N]
                   gatewarden-fuzz --show NAME
                   gatewarden-fuzz [--web-config] FILE...

            """.utf8))
        exit(status)
    }
}

enum Kind { case policy, webConfig }

/// Runs inputs one at a time, announcing each, and keeps the tally.
struct Fuzzer {
    let options: Options
    var accepted = 0
    var refused = 0
    var failures: [String] = []
    /// The slowest inputs, slowest first.
    var slowest: [(name: String, seconds: Double)] = []

    mutating func run(_ input: FuzzInput, as kind: Kind) {
        FileHandle.standardOutput.write(Data("case \(input.name)\n".utf8))
        let start = Date()
        let outcome = kind == .policy ? Self.policy(input.bytes) : Self.webConfig(input.bytes)
        let seconds = Date().timeIntervalSince(start)
        switch outcome {
        case .accepted: accepted += 1
        case .refused: refused += 1
        case .failed(let failure): failures.append("\(input.name): \(failure)")
        }
        if seconds > options.maximumSecondsPerInput {
            failures.append("\(input.name): took \(String(format: "%.1f", seconds)) s")
        }
        slowest = Array((slowest + [(input.name, seconds)]).sorted { $0.seconds > $1.seconds }.prefix(5))
    }

    static let file = "fuzz.yaml"

    enum Outcome {
        case accepted, refused
        case failed(String)
    }

    /// Parses and, if accepted, renders.
    private static func policy(_ bytes: [UInt8]) -> Outcome {
        let policy: Policy
        do {
            policy = try PolicyParser.parse(data: Data(bytes), file: file)
        } catch let problems as PolicyProblems {
            guard !problems.problems.isEmpty else { return .failed("refused with no problem") }
            return problems.problems.first { $0.line < 1 || $0.column < 1 || $0.key.isEmpty || $0.file != file }
                .map { .failed("refused without a place: \($0)") } ?? .refused
        } catch {
            return .failed("refused with \(type(of: error)), not PolicyProblems: \(error)")
        }
        for conntrackMax in [nil, 262144, Int(Int32.max)] {
            let ruleset = NFTablesRuleset(policy: policy, conntrackMax: conntrackMax)
            _ = ruleset.text
            _ = ruleset.applyTransaction
        }
        let limits = policy.xdpLimits
        _ = limits.configuration(allowlistEntries: UInt32(clamping: policy.allowlist.count),
                                 blocklistEntries: UInt32(clamping: policy.blocklist.count), listGeneration: 1)
        _ = "\(limits.source) \(limits.subnet)"
        return .accepted
    }

    private static func webConfig(_ bytes: [UInt8]) -> Outcome {
        // Read from a file, bytes that are not UTF-8 are refused before any parsing.
        guard let text = String(validating: bytes, as: UTF8.self) else { return .refused }
        do {
            _ = try WebConfig(yaml: text, path: "/etc/gatewarden/\(file)")
        } catch let problem as WebConfig.Problem {
            guard problem.line >= 1, problem.column >= 1, !problem.key.isEmpty else {
                return .failed("refused without a place: \(problem)")
            }
            return .refused
        } catch {
            return .failed("refused with \(type(of: error)), not WebConfig.Problem: \(error)")
        }
        return .accepted
    }
}

let options = Options(Array(CommandLine.arguments.dropFirst()))

if let name = options.show {
    guard let input = PolicyFuzzCorpus.input(named: name) ?? WebConfigFuzzCorpus.input(named: name) else {
        FileHandle.standardError.write(Data("gatewarden-fuzz: no input named \(name)\n".utf8))
        exit(2)
    }
    FileHandle.standardOutput.write(Data(input.bytes))
    exit(0)
}

var fuzzer = Fuzzer(options: options)
let started = Date()
var policies = 0, webConfigs = 0

if !options.files.isEmpty {
    for path in options.files {
        guard let data = FileManager.default.contents(atPath: path) else {
            FileHandle.standardError.write(Data("gatewarden-fuzz: cannot read \(path)\n".utf8))
            exit(2)
        }
        fuzzer.run(FuzzInput(name: path, bytes: Array(data)), as: options.webConfig ? .webConfig : .policy)
    }
} else {
    let policyCorpus = PolicyFuzzCorpus.inputs(seed: options.seed)
    let webCorpus = WebConfigFuzzCorpus.inputs(seed: options.seed)
    for input in policyCorpus { fuzzer.run(input, as: .policy) }
    for input in webCorpus { fuzzer.run(input, as: .webConfig) }
    policies = policyCorpus.count
    webConfigs = webCorpus.count
    // The rest of the time: further random mutations, policies and web configs in turn.
    var index = 0
    while Date().timeIntervalSince(started) < options.seconds {
        fuzzer.run(PolicyFuzzCorpus.mutation(seed: options.seed, index: policyCorpus.count + index), as: .policy)
        fuzzer.run(WebConfigFuzzCorpus.mutation(seed: options.seed, index: webCorpus.count + index), as: .webConfig)
        policies += 1
        webConfigs += 1
        index += 1
    }
}

let elapsed = String(format: "%.1f", Date().timeIntervalSince(started))
print("fuzz: \(policies) policies and \(webConfigs) web configs (seed \(options.seed)) in \(elapsed) s: "
    + "\(fuzzer.accepted) accepted (and rendered), \(fuzzer.refused) refused; "
    + "slowest: " + fuzzer.slowest.map { "\($0.name) \(String(format: "%.2f", $0.seconds)) s" }.joined(separator: ", "))
for failure in fuzzer.failures { print("FAIL \(failure)") }
print(fuzzer.failures.isEmpty ? "fuzz: no crash, every refusal at its place" : "fuzz: \(fuzzer.failures.count) failures")
exit(fuzzer.failures.isEmpty ? 0 : 1)
