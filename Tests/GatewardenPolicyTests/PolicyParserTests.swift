import GatewardenKernel
import Testing
@testable import GatewardenPolicy

/// A malformed policy and the problem it must produce: line, column and key.
struct MalformedPolicy: CustomTestStringConvertible, Sendable {
    let name: String
    let yaml: String
    let line: Int
    let column: Int
    let key: String
    let message: String

    var testDescription: String { name }
}

/// The corpus `gatewarden check` is held to; `PolicyRejectionTests` loads each against a real table too.
let malformedPolicies: [MalformedPolicy] = [
    .init(name: "unknown top-level key", yaml: "protected_port: [443]\n", line: 1, column: 1, key: "protected_port", message: "unknown key"),
    .init(name: "unknown nested key", yaml: "limits:\n  per_sauce: {rate: 1/second, burst: 1}\n", line: 2, column: 3, key: "limits.per_sauce", message: "unknown key"),
    .init(name: "port out of range", yaml: "protected_ports: [443, 70000]\n", line: 1, column: 24, key: "protected_ports[1]", message: "out of range"),
    .init(name: "port zero", yaml: "protected_ports: [0]\n", line: 1, column: 19, key: "protected_ports[0]", message: "out of range"),
    .init(name: "port not a number", yaml: "protected_ports: [https]\n", line: 1, column: 19, key: "protected_ports[0]", message: "whole number"),
    .init(name: "duplicate port", yaml: "protected_ports: [443, 443]\n", line: 1, column: 24, key: "protected_ports[1]", message: "listed twice"),
    .init(name: "ports not a list", yaml: "protected_ports: 443\n", line: 1, column: 18, key: "protected_ports", message: "list of ports"),
    .init(name: "no protected port", yaml: "protected_ports: []\n", line: 1, column: 18, key: "protected_ports", message: "at least one"),
    .init(name: "rate zero", yaml: "limits:\n  per_source: {rate: 0/second, burst: 10}\n", line: 2, column: 22, key: "limits.per_source.rate", message: "refuses everything"),
    .init(name: "rate without unit", yaml: "limits:\n  per_source: {rate: 100, burst: 200}\n", line: 2, column: 22, key: "limits.per_source.rate", message: "N/second"),
    .init(name: "burst below rate", yaml: "limits:\n  per_subnet:\n    rate: 500/second\n    burst: 100\n", line: 4, column: 12, key: "limits.per_subnet.burst", message: "below the rate"),
    .init(name: "burst zero", yaml: "limits:\n  new_connections_per_source: {rate: 1/second, burst: 0}\n", line: 2, column: 55, key: "limits.new_connections_per_source.burst", message: "out of range"),
    .init(name: "rate as a bare string", yaml: "limits:\n  per_source: 100/second\n", line: 2, column: 15, key: "limits.per_source", message: "expected {rate"),
    .init(name: "IPv6 prefix /7", yaml: "subnets:\n  ipv6_prefix: 7\n", line: 2, column: 16, key: "subnets.ipv6_prefix", message: "out of range 48...64"),
    .init(name: "IPv4 prefix /33", yaml: "subnets:\n  ipv4_prefix: 33\n", line: 2, column: 16, key: "subnets.ipv4_prefix", message: "out of range"),
    .init(name: "CIDR with host bits", yaml: "allowlist:\n  - 192.0.2.1/24\n", line: 2, column: 5, key: "allowlist[0]", message: "host bits"),
    .init(name: "not an address", yaml: "allowlist: [example.com]\n", line: 1, column: 13, key: "allowlist[0]", message: "neither an IPv4 nor an IPv6"),
    .init(name: "prefix length too long", yaml: "blocklist:\n  entries: [2001:db8::/129]\n", line: 2, column: 13, key: "blocklist.entries[0]", message: "0 to 128"),
    .init(name: "allow and block overlap", yaml: "allowlist: [198.51.100.0/24]\nblocklist:\n  entries: [198.51.100.128/25]\n", line: 3, column: 13, key: "blocklist.entries[0]", message: "overlaps allowlist entry 198.51.100.0/24"),
    .init(name: "conntrack cap over 100%", yaml: "limits:\n  conntrack_cap: 120%\n", line: 2, column: 18, key: "limits.conntrack_cap", message: "1% to 100%"),
    .init(name: "concurrent connections zero", yaml: "limits:\n  concurrent_connections_per_source: 0\n", line: 2, column: 38, key: "limits.concurrent_connections_per_source", message: "out of range"),
    .init(name: "bad duration", yaml: "escalation:\n  block_for: forever\n", line: 2, column: 14, key: "escalation.block_for", message: "duration"),
    .init(name: "blocklist size too small", yaml: "blocklist:\n  size: 2\n", line: 2, column: 9, key: "blocklist.size", message: "out of range"),
    .init(name: "log prefix with a quote", yaml: "log_prefix: 'gw\"drop'\n", line: 1, column: 13, key: "log_prefix", message: "without quotes"),
    .init(name: "ct mark zero", yaml: "ct_mark_drop: 0\n", line: 1, column: 15, key: "ct_mark_drop", message: "out of range"),
    .init(name: "xdp enabled not a boolean", yaml: "xdp:\n  enabled: maybe\n", line: 2, column: 12, key: "xdp.enabled", message: "true or false"),
    .init(name: "not a mapping", yaml: "- protected_ports\n", line: 1, column: 1, key: "(root)", message: "mapping"),
    .init(name: "broken YAML", yaml: "limits: {per_source: [\n", line: 2, column: 1, key: "(yaml)", message: ""),
]

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

    @Test("escalation: off")
    func escalationOff() throws {
        #expect(try PolicyParser.parse(yaml: "escalation: off\n", file: "p.yaml").escalationPerSubnet == nil)
    }

    @Test("at least 20 malformed policies", .tags())
    func corpusSize() {
        #expect(malformedPolicies.count >= 20)
    }

    @Test("each malformed policy is rejected with its line, column and key", arguments: malformedPolicies)
    func rejects(_ bad: MalformedPolicy) throws {
        do {
            _ = try PolicyParser.parse(yaml: bad.yaml, file: "/etc/gatewarden/policy.yaml")
            Issue.record("accepted")
        } catch let problems as PolicyProblems {
            let problem = try #require(problems.problems.first)
            #expect(problem.key == bad.key)
            #expect(problem.line == bad.line)
            #expect(problem.column == bad.column)
            #expect(bad.message.isEmpty || problem.message.contains(bad.message), "message: \(problem.message)")
            #expect(problem.description.hasPrefix("/etc/gatewarden/policy.yaml:\(bad.line):\(bad.column): \(bad.key): "))
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
}
