import Foundation
import GatewardenKernel
import GatewardenTestSupport
import Testing
@testable import GatewardenPolicy
import GatewardenCore

/// The corpus lives in Tests/Fixtures/policies/malformed; `PolicyRejectionTests` loads each one
/// against a real table too.
let malformedPolicies = MalformedPolicy.corpus()

@Suite("Policy parsing and validation")
struct PolicyParserTests {
    @Test("an empty policy is the built-in default")
    func emptyIsDefault() throws {
        #expect(try PolicyParser.parse(yaml: "", file: "p.yaml") == .builtInDefault)
        #expect(try PolicyParser.parse(yaml: "{}\n", file: "p.yaml") == .builtInDefault)
    }

    @Test("every key, read")
    func everyKey() throws {
        let policy = try PolicyParser.parse(yaml: """
            protected_ports: [443, 8080]
            auth_ports: []
            subnets: {ipv4_prefix: 22, ipv6_prefix: 48}
            limits:
              per_source: {rate: 50/second, burst: 100}
              per_subnet: off
              new_connections_per_source: {rate: 600/minute, burst: 20}
              concurrent_connections_per_source: 10
              conntrack_cap: 75%
              auth_per_subnet: {rate: 10/minute}
            escalation: {per_subnet: {rate: 1000/minute, burst: 1000}, block_for: 2h}
            blocklist: {timeout: 6h, size: 4096, entries: [203.0.113.0/24, "2001:db8:bad::/48"]}
            allowlist: [192.0.2.0/24]
            log_prefix: "gatewarden drop: "
            ct_mark_drop: 0x2a
            xdp: {enabled: false, sources_map_size: 65536, subnets_map_size: 16384}
            """, file: "p.yaml")
        #expect(policy.protectedPorts == [443, 8080])
        #expect(policy.authPorts == [])
        #expect(policy.ipv4SubnetPrefix == 22 && policy.ipv6SubnetPrefix == 48)
        #expect(policy.perSource == Rate(50, per: .second, burst: 100))
        #expect(policy.perSubnet == nil)
        #expect(policy.newConnectionsPerSource == Rate(600, per: .minute, burst: 20))
        #expect(policy.concurrentConnectionsPerSource == 10)
        #expect(policy.conntrackCapPercent == 75)
        #expect(policy.authPerSubnet == Rate(10, per: .minute, burst: 5), "the burst keeps its default")
        #expect(policy.escalationPerSubnet == Rate(1000, per: .minute, burst: 1000))
        #expect(policy.escalationBlockFor == PolicyDuration(seconds: 7200))
        #expect(policy.blocklistTimeout.description == "6h" && policy.blocklistSize == 4096)
        #expect(policy.blocklist.map(\.description) == ["203.0.113.0/24", "2001:db8:bad::/48"])
        #expect(policy.allowlist.map(\.description) == ["192.0.2.0/24"])
        #expect(policy.logPrefix == "gatewarden drop: ")
        #expect(policy.ctMarkDrop == 42)
        #expect(!policy.xdpEnabled && policy.xdpSourcesMapSize == 65536 && policy.xdpSubnetsMapSize == 16384)
    }

    @Test("the shipped example policy is valid")
    func example() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples/policy.yaml").path
        let policy = try PolicyParser.parse(file: path)
        #expect(policy.ipv6SubnetPrefix == 56)
        #expect(policy.allowlist.count == 2)
    }

    @Test("escalation: off")
    func escalationOff() throws {
        #expect(try PolicyParser.parse(yaml: "escalation: off\n", file: "p.yaml").escalationPerSubnet == nil)
    }

    @Test("at least 20 malformed policies")
    func corpusSize() {
        #expect(malformedPolicies.count >= 20)
    }

    @Test("each malformed policy is rejected with its line, column and key", arguments: malformedPolicies)
    func rejects(_ bad: MalformedPolicy) throws {
        do {
            _ = try PolicyParser.parse(yaml: bad.yaml, file: bad.file)
            Issue.record("accepted")
        } catch let problems as PolicyProblems {
            let problem = try #require(problems.problems.first)
            #expect(problem.key == bad.key)
            #expect(problem.line == bad.line)
            #expect(problem.column == bad.column)
            #expect(bad.message.isEmpty || problem.message.contains(bad.message), "message: \(problem.message)")
            #expect(problem.description.hasPrefix("\(bad.file):\(bad.line):\(bad.column): \(bad.key): "))
        }
    }

    @Test("every problem is reported, not only the first")
    func allProblems() {
        do {
            _ = try PolicyParser.parse(yaml: "protected_ports: [0]\nsubnets: {ipv6_prefix: 7}\nbogus: 1\n", file: "p.yaml")
            Issue.record("accepted")
        } catch let problems as PolicyProblems {
            #expect(problems.problems.map(\.key) == ["protected_ports[0]", "subnets.ipv6_prefix", "bogus"])
            #expect(problems.description.split(separator: "\n").count == 3)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("a file that is not UTF-8 is refused at its first bad byte, by line and column")
    func invalidUTF8() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-utf8-\(getpid()).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data("allowlist: [192.0.2.0/24]\nprotected_ports: [80, 4".utf8 + [0xe9] + Data("]\n".utf8)).write(to: file)
        #expect(throws: PolicyProblems.self) { try PolicyParser.parse(file: file.path) }
        do {
            _ = try PolicyParser.parse(file: file.path)
        } catch let problems as PolicyProblems {
            #expect(problems.problems.map(\.description) == ["\(file.path):2:24: (yaml): not valid UTF-8"])
        }
    }
}
