import Foundation
import GatewardenTestSupport
import Testing
@testable import GatewardenPolicy
import GatewardenCore

/// Nothing in a policy file or a web config may trap the program: `gatewarden-fuzz` runs the
/// generated corpus (and random mutations for the rest of its time) through the parsers and, for
/// every accepted policy, the renderers, in a child process so that a trap is reported with the
/// input that caused it. `GATEWARDEN_FUZZ_SECONDS` sets the time (default 30).
@Suite("Fuzzing the policy and web config parsers")
struct PolicyFuzzTests {
    @Test("the corpus: at least 500 policies and 100 web configs, each name its own input, the same for the same seed")
    func corpus() {
        let policies = PolicyFuzzCorpus.inputs(seed: 11)
        let webConfigs = WebConfigFuzzCorpus.inputs(seed: 11)
        #expect(policies.count >= 500)
        #expect(webConfigs.count >= 100)
        #expect(Set(policies.map(\.name)).count == policies.count)
        #expect(Set(webConfigs.map(\.name)).count == webConfigs.count)
        #expect(PolicyFuzzCorpus.inputs(seed: 11).map(\.bytes) == policies.map(\.bytes), "deterministic")
        #expect(PolicyFuzzCorpus.inputs(seed: 12).map(\.bytes) != policies.map(\.bytes), "the seed matters")
        for input in [policies[0], policies[policies.count / 2], policies[policies.count - 1], webConfigs[webConfigs.count - 1]] {
            #expect((PolicyFuzzCorpus.input(named: input.name) ?? WebConfigFuzzCorpus.input(named: input.name))?.bytes == input.bytes,
                    "\(input.name) is made again from its name")
        }
    }

    @Test("no generated input traps or hangs the parsers or the renderers; every refusal names its place")
    func fuzz() throws {
        let seconds = ProcessInfo.processInfo.environment["GATEWARDEN_FUZZ_SECONDS"] ?? "30"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: BuiltProduct.path("gatewarden-fuzz"))
        process.arguments = ["--seconds", seconds]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let lines = text.split(separator: "\n")
        if process.terminationReason == .uncaughtSignal {
            let last = lines.last { $0.hasPrefix("case ") }.map { String($0.dropFirst(5)) } ?? "?"
            let message = "gatewarden-fuzz died of signal \(process.terminationStatus) on input \(last) "
                + "(`gatewarden-fuzz --show \(last)` prints it; add it to Tests/Fixtures/policies/malformed)"
            Issue.record("\(message)")
            return
        }
        let report = lines.filter { !$0.hasPrefix("case ") }.joined(separator: "\n")
        #expect(process.terminationStatus == 0, "\(report)")
        #expect(report.contains("no crash"), "\(report)")
        print(report)
    }

    @Test("an alias bomb used as a key is refused at once, at the alias")
    func aliasBomb() throws {
        let bomb = try #require(PolicyFuzzCorpus.input(named: "shape-alias-bomb-key"))
        let start = Date()
        #expect(throws: PolicyProblems.self) { try PolicyParser.parse(data: Data(bomb.bytes), file: "bomb.yaml") }
        #expect(Date().timeIntervalSince(start) < 5)
        do {
            _ = try PolicyParser.parse(data: Data(bomb.bytes), file: "bomb.yaml")
        } catch let problems as PolicyProblems {
            #expect(problems.description == "bomb.yaml:11:3: (yaml): a key must be a plain word, not a list, a mapping or an alias")
        }
    }

    @Test("nesting past 64 levels is refused at the 65th")
    func depth() {
        let text = "limits: " + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "\n"
        do {
            _ = try PolicyParser.parse(yaml: text, file: "deep.yaml")
            Issue.record("accepted")
        } catch let problems as PolicyProblems {
            #expect(problems.description == "deep.yaml:1:72: (yaml): nested deeper than 64 levels")
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test("the largest accepted burst renders for XDP without overflowing")
    func longestBurst() throws {
        // 1/hour: 3600 s between packets; 87600 of them refill in exactly ten years.
        let policy = try PolicyParser.parse(yaml: "limits: {per_subnet: {rate: 1/hour, burst: 87600}}\n", file: "p.yaml")
        let config = policy.xdpLimits.configuration(allowlistEntries: 0, blocklistEntries: 0, listGeneration: 1)
        #expect(config.subnet_tolerance_ns == 3_600_000_000_000 * 87600)
        #expect(throws: PolicyProblems.self) {
            try PolicyParser.parse(yaml: "limits: {per_subnet: {rate: 1/hour, burst: 87601}}\n", file: "p.yaml")
        }
    }
}
