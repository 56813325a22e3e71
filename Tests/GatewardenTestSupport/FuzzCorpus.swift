import Foundation

/// One generated input: its bytes, and a name that says how it was made. The same name always
/// names the same bytes (`PolicyFuzzCorpus.input(named:)` makes it again), so a crash reported by
/// name can be reproduced and added to the malformed corpus.
public struct FuzzInput: Sendable, CustomStringConvertible {
    public let name: String
    public let bytes: [UInt8]

    public init(name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }

    public init(name: String, text: String) {
        self.init(name: name, bytes: Array(text.utf8))
    }

    public var description: String { name }
}

/// Broken and edge-case policies, made deterministically from a seed: the shipped example and the
/// fixtures as they are; every key given every hostile value (huge, negative and overflowing
/// numbers, rates and durations, odd units, CIDRs with host bits, wrong types, tags, aliases);
/// documents hostile by shape (alias bombs, deep nesting, huge lists, very long lines, duplicate
/// keys, encodings); and random mutations of the seeds (truncations, byte flips, invalid UTF-8,
/// tabs, lines deleted or repeated).
///
///     for input in PolicyFuzzCorpus.inputs(seed: 11) { exercise(input.bytes) }
public enum PolicyFuzzCorpus {
    /// Every input for `seed`: the fixed ones, then `mutations` random ones.
    public static func inputs(seed: UInt64, mutations: Int = 600) -> [FuzzInput] {
        seeds + hostileValues + hostileShapes + (0..<mutations).map { mutation(seed: seed, index: $0) }
    }

    /// The input `name` stands for (a name from `inputs(seed:)` or `mutation(seed:index:)`).
    public static func input(named name: String) -> FuzzInput? {
        if let (seed, index) = FuzzNames.mutation(name, prefix: "policy") { return mutation(seed: seed, index: index) }
        return (seeds + hostileValues + hostileShapes).first { $0.name == name }
    }

    /// The `index`th random mutation of a seed policy: 1 to 4 edits of one seed, sometimes spliced with another.
    public static func mutation(seed: UInt64, index: Int) -> FuzzInput {
        var random = SeededRandom(seed: seed ^ (UInt64(index) &* 0x2545_f491_4f6c_dd1d))
        let donors = seeds.map(\.bytes)
        let bytes = Mutator.mutate(donors[Int(random.next() % UInt64(donors.count))], donors: donors, using: &random)
        return FuzzInput(name: FuzzNames.mutationName(prefix: "policy", seed: seed, index: index), bytes: bytes)
    }

    // MARK: Seeds

    /// The shipped example, each malformed fixture, and a few small valid policies.
    public static let seeds: [FuzzInput] = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var seeds: [FuzzInput] = []
        if let example = FileManager.default.contents(atPath: root.appendingPathComponent("examples/policy.yaml").path) {
            seeds.append(FuzzInput(name: "seed-example", bytes: Array(example)))
        }
        for bad in MalformedPolicy.corpus() {
            seeds.append(FuzzInput(name: "seed-\(bad.name)", text: bad.yaml))
        }
        seeds.append(FuzzInput(name: "seed-flow", text: """
            {protected_ports: [443], limits: {per_source: {rate: 10/s, burst: 20}, per_subnet: off}, \
            blocklist: {entries: ["2001:db8::/32", 198.51.100.0/24]}, xdp: {enabled: false}}

            """))
        seeds.append(FuzzInput(name: "seed-observe", text: """
            mode: observe
            auth_ports: []
            escalation: off
            limits:
              concurrent_connections_per_source: off
              conntrack_cap: off
              auth_per_subnet: {rate: 1/hour, burst: 1}

            """))
        return seeds
    }()

    // MARK: Every key, every hostile value

    /// Where a value goes: a key path and the document that puts the value there.
    private static let slots: [(key: String, document: @Sendable (String) -> String)] = [
        ("(root)", { $0 + "\n" }),
        ("mode", { "mode: \($0)\n" }),
        ("protected_ports", { "protected_ports: \($0)\n" }),
        ("protected_ports[]", { "protected_ports: [443, \($0)]\n" }),
        ("auth_ports[]", { "auth_ports: [\($0)]\n" }),
        ("subnets", { "subnets: \($0)\n" }),
        ("subnets.ipv4_prefix", { "subnets: {ipv4_prefix: \($0)}\n" }),
        ("subnets.ipv6_prefix", { "subnets:\n  ipv6_prefix: \($0)\n" }),
        ("limits", { "limits: \($0)\n" }),
        ("limits.per_source", { "limits:\n  per_source: \($0)\n" }),
        ("limits.per_source.rate", { "limits:\n  per_source: {rate: \($0), burst: 4294967295}\n" }),
        ("limits.per_source.burst", { "limits:\n  per_source: {rate: 1/second, burst: \($0)}\n" }),
        ("limits.per_subnet.rate", { "limits:\n  per_subnet:\n    rate: \($0)\n    burst: 2147483647\n" }),
        ("limits.per_subnet.burst/hour", { "limits:\n  per_subnet: {rate: 1/hour, burst: \($0)}\n" }),
        ("limits.new_connections_per_source.rate", { "limits:\n  new_connections_per_source: {rate: \($0), burst: 2147483647}\n" }),
        ("limits.new_connections_per_source.burst", { "limits:\n  new_connections_per_source: {rate: 1/minute, burst: \($0)}\n" }),
        ("limits.auth_per_subnet.rate", { "limits:\n  auth_per_subnet: {rate: \($0)}\n" }),
        ("limits.concurrent_connections_per_source", { "limits:\n  concurrent_connections_per_source: \($0)\n" }),
        ("limits.conntrack_cap", { "limits:\n  conntrack_cap: \($0)\n" }),
        ("escalation", { "escalation: \($0)\n" }),
        ("escalation.per_subnet.rate", { "escalation:\n  per_subnet: {rate: \($0), burst: 2147483647}\n" }),
        ("escalation.per_subnet.burst", { "escalation:\n  per_subnet: {rate: 1/hour, burst: \($0)}\n" }),
        ("escalation.block_for", { "escalation:\n  block_for: \($0)\n" }),
        ("blocklist.timeout", { "blocklist:\n  timeout: \($0)\n" }),
        ("blocklist.size", { "blocklist: {size: \($0)}\n" }),
        ("blocklist.entries", { "blocklist:\n  entries: \($0)\n" }),
        ("blocklist.entries[]", { "blocklist:\n  entries:\n    - \($0)\n" }),
        ("allowlist", { "allowlist: \($0)\n" }),
        ("allowlist[]", { "allowlist: [\($0)]\n" }),
        ("allowlist[]+blocklist", { "allowlist: [\($0)]\nblocklist: {entries: [192.0.2.0/24, \"::/0\"]}\n" }),
        ("log_prefix", { "log_prefix: \($0)\n" }),
        ("log_prefix\"\"", { "log_prefix: \"\($0)\"\n" }),
        ("ct_mark_drop", { "ct_mark_drop: \($0)\n" }),
        ("xdp", { "xdp: \($0)\n" }),
        ("xdp.enabled", { "xdp: {enabled: \($0)}\n" }),
        ("xdp.sources_map_size", { "xdp:\n  sources_map_size: \($0)\n" }),
        ("xdp.subnets_map_size", { "xdp: {subnets_map_size: \($0)}\n" }),
        ("xdp-off+limits.per_source.rate", { "xdp: {enabled: false}\nlimits: {per_source: {rate: \($0), burst: 2147483647}}\n" }),
        ("xdp-off+limits.per_subnet.burst", { "xdp: {enabled: false}\nlimits: {per_subnet: {rate: 1/hour, burst: \($0)}}\n" }),
    ]

    /// Scalars and small structures that have broken, or could break, a parser or a renderer.
    static let hostileValues: [FuzzInput] = {
        var inputs: [FuzzInput] = []
        for slot in slots {
            for (index, value) in HostileValues.all.enumerated() {
                inputs.append(FuzzInput(name: "value-\(slot.key)-\(index)", text: slot.document(value)))
            }
        }
        return inputs
    }()

    // MARK: Shapes

    static let hostileShapes: [FuzzInput] = {
        var shapes: [(String, [UInt8])] = []
        func add(_ name: String, _ text: String) { shapes.append((name, Array(text.utf8))) }
        add("empty", "")
        add("blank", " \n\n \t\n")
        add("comment-only", "# nothing\n")
        add("document-marker", "---\n")
        add("document-end", "---\n...\n")
        add("two-documents", "protected_ports: [443]\n---\nprotected_ports: [80]\n")
        add("null-document", "~\n")
        add("bom", "\u{feff}protected_ports: [443]\n")
        add("crlf", "protected_ports: [443]\r\nsubnets:\r\n  ipv4_prefix: 16\r\n")
        add("cr-only", "protected_ports: [443]\rsubnets:\r  ipv4_prefix: 16\r")
        add("nul-byte", "protected_ports: [443]\0\n")
        add("nul-in-key", "protected\0_ports: [443]\n")
        add("tab-indent", "limits:\n\tper_source: {rate: 1/s, burst: 1}\n")
        add("tab-after-key", "protected_ports:\t[443]\n")
        add("mixed-indent", "limits:\n  per_source:\n\t  rate: 1/s\n")
        add("duplicate-top-key", "mode: enforce\nmode: observe\n")
        add("duplicate-nested-key", "limits:\n  per_source: {rate: 1/s, burst: 5}\n  per_source: off\n")
        add("duplicate-rate-key", "limits:\n  per_source: {rate: 1/s, rate: 2/s, burst: 5}\n")
        add("duplicate-flow-key", "{mode: enforce, mode: enforce}\n")
        add("complex-key", "? [a, b]\n: 1\n")
        add("mapping-key", "{a: 1}: 2\n")
        add("merge-key", "base: &base {rate: 1/s, burst: 2}\nlimits:\n  per_source:\n    <<: *base\n")
        add("merge-into-root", "x: &x {mode: observe}\n<<: *x\n")
        add("undefined-alias", "protected_ports: *nowhere\n")
        add("alias-to-scalar", "mode: &m enforce\nlog_prefix: *m\n")
        add("anchor-on-key", "&k mode: enforce\n")
        add("recursive-looking-alias", "a: &a [*a]\n")
        add("tag-binary", "log_prefix: !!binary aGVsbG8=\n")
        add("tag-set", "allowlist: !!set {192.0.2.0/24, 198.51.100.0/24}\n")
        add("tag-omap", "limits: !!omap [per_source: off]\n")
        add("tag-local", "protected_ports: !ports [443]\n")
        add("tag-verbatim", "mode: !<tag:yaml.org,2002:str> enforce\n")
        add("tag-directive", "%TAG ! tag:example.com,2000:\n---\nmode: !x enforce\n")
        add("yaml-directive", "%YAML 1.1\n---\nmode: enforce\n")
        add("yaml-directive-future", "%YAML 2.0\n---\nmode: enforce\n")
        add("literal-block", "log_prefix: |\n  gatewarden\n  drop\n")
        add("folded-block", "log_prefix: >-\n  gatewarden\n  drop\n")
        add("unterminated-quote", "log_prefix: \"gatewarden\n")
        add("unterminated-flow", "protected_ports: [443, 80\n")
        add("lone-colon", ":\n")
        add("lone-dash", "-\n")
        add("question-only", "?\n")
        add("escapes", "log_prefix: \"\\x00\\u0000\\U0001F525\\e\\a\"\n")
        add("surrogate-escape", "log_prefix: \"\\ud800\"\n")
        add("astral-key", "🔥: 1\n")
        add("combining-marks", "mode: enforce\u{301}\n")

        // Alias bombs (billion laughs): each level lists the one below ten times.
        for (name, placement) in [("allowlist", "allowlist: *l9\n"), ("protected_ports", "protected_ports: *l9\n"),
                                  ("limits", "limits: *l9\n"), ("key", "? *l9\n: 1\n"), ("root", "*l9\n")] {
            var text = "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
            for level in 1...9 {
                text += "l\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
            }
            add("alias-bomb-\(name)", name == "root" ? "- &l0 [lol, lol]\n- *l0\n" : text + placement)
        }
        var mappingBomb = "m0: &m0 {rate: 1/s, burst: 1}\n"
        for level in 1...9 {
            mappingBomb += "m\(level): &m\(level) {" + (0..<10).map { "k\($0): *m\(level - 1)" }.joined(separator: ", ") + "}\n"
        }
        add("alias-bomb-mapping", mappingBomb + "limits: *m9\nescalation: *m9\n")

        // Depth.
        for depth in [64, 1_000, 10_000, 100_000] {
            add("deep-flow-sequence-\(depth)", "protected_ports: " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "\n")
            add("deep-flow-mapping-\(depth)", "limits: " + String(repeating: "{a: ", count: depth) + "1" + String(repeating: "}", count: depth) + "\n")
            add("deep-block-sequence-\(depth)", "allowlist:\n" + String(repeating: "- ", count: depth) + "192.0.2.0/24\n")
            add("deep-unclosed-\(depth)", String(repeating: "[", count: depth) + "\n")
        }
        var indented = ""
        for level in 0..<500 { indented += String(repeating: " ", count: level) + "k\(level):\n" }
        add("deep-block-mapping-500", indented + String(repeating: " ", count: 500) + "1\n")

        // Size.
        add("ports-70000", "protected_ports: [" + (1...70_000).map { String($0 % 65536) }.joined(separator: ", ") + "]\n")
        add("ports-all-65535", "protected_ports: [" + (1...65_535).map(String.init).joined(separator: ", ") + "]\n")
        add("auth-ports-1000", "auth_ports: [" + (1...1_000).map(String.init).joined(separator: ", ") + "]\n")
        add("allowlist-4096-hosts", "allowlist:\n" + (0..<4_096).map { "  - 10.\($0 / 256).\($0 % 256).1/32\n" }.joined())
        add("allowlist-5001", "allowlist:\n" + (0..<5_001).map { "  - 10.\($0 / 256).\($0 % 256).0/24\n" }.joined())
        add("blocklist-65537", "blocklist:\n  entries: [" + (0..<65_537).map { "10.\($0 / 256 % 256).\($0 % 256).\($0 / 65536)/32" }.joined(separator: ", ") + "]\n")
        add("allowlist-ipv6-1000", "allowlist:\n" + (0..<1_000).map { "  - \"2001:db8:\(String($0, radix: 16))::/48\"\n" }.joined())
        add("long-log-prefix", "log_prefix: \"" + String(repeating: "x", count: 1 << 20) + "\"\n")
        add("long-key", String(repeating: "k", count: 1 << 20) + ": 1\n")
        add("long-comment", "# " + String(repeating: "c", count: 1 << 20) + "\nmode: enforce\n")
        add("long-number", "ct_mark_drop: " + String(repeating: "9", count: 100_000) + "\n")
        add("long-rate", "limits: {per_source: {rate: " + String(repeating: "9", count: 10_000) + "/second, burst: 1}}\n")
        add("long-duration", "blocklist: {timeout: " + String(repeating: "9", count: 10_000) + "d}\n")
        add("many-keys", (0..<20_000).map { "k\($0): \($0)\n" }.joined())
        add("many-problems", "protected_ports: [" + Array(repeating: "0", count: 20_000).joined(separator: ", ") + "]\n")
        add("many-lines", String(repeating: "\n", count: 200_000) + "mode: observe\n")

        var inputs = shapes.map { FuzzInput(name: "shape-\($0.0)", bytes: $0.1) }
        // Invalid UTF-8 at the start, in a key, in a value, and a lone continuation, overlong and surrogate forms.
        let invalid: [(String, [UInt8])] = [("ff", [0xff]), ("c3", [0xc3]), ("80", [0x80]), ("overlong", [0xc0, 0xaf]),
                                             ("surrogate", [0xed, 0xa0, 0x80]), ("f5", [0xf5, 0x80, 0x80, 0x80])]
        for (name, bytes) in invalid {
            inputs.append(FuzzInput(name: "utf8-\(name)-start", bytes: bytes + Array("mode: enforce\n".utf8)))
            inputs.append(FuzzInput(name: "utf8-\(name)-key", bytes: Array("mo".utf8) + bytes + Array("de: enforce\n".utf8)))
            inputs.append(FuzzInput(name: "utf8-\(name)-value", bytes: Array("protected_ports: [443]\nlog_prefix: \"a".utf8) + bytes + Array("\"\n".utf8)))
            inputs.append(FuzzInput(name: "utf8-\(name)-end", bytes: Array("mode: enforce\n".utf8) + bytes))
        }
        inputs.append(FuzzInput(name: "utf16", bytes: [0xff, 0xfe] + Array("mode: enforce\n".utf8).flatMap { [$0, 0] }))
        inputs.append(FuzzInput(name: "utf32-bom", bytes: [0x00, 0x00, 0xfe, 0xff, 0, 0, 0, 0x6d]))
        return inputs
    }()
}

/// Broken and edge-case `--web.config.file`s, made like `PolicyFuzzCorpus`.
public enum WebConfigFuzzCorpus {
    public static func inputs(seed: UInt64, mutations: Int = 200) -> [FuzzInput] {
        seeds + hostileValues + (0..<mutations).map { mutation(seed: seed, index: $0) }
    }

    public static func input(named name: String) -> FuzzInput? {
        if let (seed, index) = FuzzNames.mutation(name, prefix: "web") { return mutation(seed: seed, index: index) }
        return (seeds + hostileValues).first { $0.name == name }
    }

    public static func mutation(seed: UInt64, index: Int) -> FuzzInput {
        var random = SeededRandom(seed: seed ^ (UInt64(index) &* 0x9e37_79b9_7f4a_7c15) ^ 0x5eb)
        let donors = seeds.map(\.bytes)
        let bytes = Mutator.mutate(donors[Int(random.next() % UInt64(donors.count))], donors: donors, using: &random)
        return FuzzInput(name: FuzzNames.mutationName(prefix: "web", seed: seed, index: index), bytes: bytes)
    }

    /// bcrypt (cost 10) of "scrape-secret".
    static let hash = "$2b$10$nh7N5M1AAtFwmjKUjTVgS.5uds7ta/B5T6rtFQT/YhLADAUvhzs1."

    public static let seeds: [FuzzInput] = [
        FuzzInput(name: "web-seed-users", text: "basic_auth_users:\n  prometheus: \(hash)\n  grafana: '\(hash)'\n"),
        FuzzInput(name: "web-seed-tls", text: "tls_server_config:\n  cert_file: /nonexistent/server.crt\n  key_file: server.key\n  min_version: TLS13\n"),
        FuzzInput(name: "web-seed-both", text: "tls_server_config: {min_version: TLS12}\nbasic_auth_users: {a: \"\(hash)\"}\n"),
        FuzzInput(name: "web-seed-empty", text: ""),
    ]

    private static let slots: [(key: String, document: @Sendable (String) -> String)] = [
        ("(root)", { $0 + "\n" }),
        ("basic_auth_users", { "basic_auth_users: \($0)\n" }),
        ("basic_auth_users.user", { "basic_auth_users:\n  \($0): \(hash)\n" }),
        ("basic_auth_users.hash", { "basic_auth_users:\n  prometheus: \($0)\n" }),
        ("tls_server_config", { "tls_server_config: \($0)\n" }),
        ("tls_server_config.cert_file", { "tls_server_config:\n  cert_file: \($0)\n  key_file: \($0)\n" }),
        ("tls_server_config.min_version", { "tls_server_config: {min_version: \($0)}\n" }),
        ("http_server_config", { "http_server_config: \($0)\n" }),
    ]

    static let hostileValues: [FuzzInput] = {
        let special = ["$2y$10$", "$2a$04$" + String(repeating: "a", count: 53), "$2b$99$" + String(repeating: "a", count: 53),
                       "$2b$-1$" + String(repeating: "a", count: 53), "$1$salt$hash", "$$$", "'$2b$10$'", "a:b", "':'",
                       "/dev/null", "/dev/zero", "/proc/self/status", "/", ".", "..", "../../../../etc/hostname",
                       "/nonexistent", "TLS10", "TLS13", "TLS14", "SSL3", "tls12"]
        var inputs: [FuzzInput] = []
        for slot in slots {
            for (index, value) in (HostileValues.all + special).enumerated() {
                inputs.append(FuzzInput(name: "web-value-\(slot.key)-\(index)", text: slot.document(value)))
            }
        }
        return inputs
    }()
}

/// Values as YAML text, for any key.
enum HostileValues {
    static let numbers = [
        "0", "-0", "-1", "1", "7", "8", "15", "16", "32", "33", "47", "48", "64", "65", "127", "128", "129", "1023", "1024",
        "65535", "65536", "16777216", "16777217", "67108864", "67108865", "2147483647", "2147483648", "4294967295",
        "4294967296", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
        "18446744073709551615", "18446744073709551616", "99999999999999999999999999999999", "1e400", "-1e400", "1e3",
        "1.5", "0.0", "0x10", "0xffffffff", "0x100000000", "0xffffffffffffffff", "0o17", "0b101", "017", "1_000", "+1",
        ".inf", "-.inf", ".nan", "1:30", "12:00:00",
    ]
    static let rates = [
        "0/s", "0/second", "1/s", "1/sec", "1/m", "1/min", "1/h", "1/hour", "1e400/s", "-1/s", "+1/s", "1/0", "1/fortnight",
        "1/second/second", "/second", "1/", "/", "1 / minute", "' 1/s '", "1/SECOND", "0x10/s", "1.5/s", "1_000/s",
        "18446744073709551615/second", "18446744073709551615/minute", "18446744073709551615/hour",
        "18446744073709551616/second", "9223372036854775807/hour", "4294967295/second", "4294967296/second",
        "1000000000/second", "1000000001/second", "3600000000001/hour", "59/minute", "61/minute", "3599/hour",
    ]
    static let durations = [
        "0s", "1s", "59s", "60s", "3650d", "3651d", "87600h", "87601h", "315360000s", "315360001s", "5256000m",
        "106751991167300d", "213503982334601d", "18446744073709551615s", "99999999999999999999d", "-1h", "1.5h",
        "1w", "1ms", "h", "d", "1H", "' 1h'", "1h ", "1d1h", "1e3s", "0x10s",
    ]
    static let addresses = [
        "192.0.2.0/24", "192.0.2.1/24", "192.0.2.1/32", "192.0.2.1", "0.0.0.0/0", "0.0.0.0/1", "255.255.255.255/32",
        "'::/0'", "'::/128'", "'::1'", "'::1/128'", "'::ffff:192.0.2.0/120'", "'::ffff:192.0.2.0/96'", "'::ffff:0:0/96'",
        "'fe80::1%eth0/64'", "'fe80::%lo/64'", "'2001:db8::/129'", "'2001:db8::/32'", "'2001:DB8::/32'",
        "'2001:db8::1/32'", "'2001:0db8:0000::/48'", "'1::2::3/64'", "'::192.0.2.1/128'", "'64:ff9b::192.0.2.0/120'",
        "192.0.2.0/-1", "'192.0.2.0/ 24'", "192.0.2.0/024", "192.0.2.0/+24", "010.0.0.0/8", "1.2.3/24", "1/8",
        "256.0.0.0/8", "192.0.2.0/24/24", "/24", "192.0.2.0/", "192.0.2.0/33", "192.0.2.0/4294967320",
        "'192.0.2.0/24\\0'", "\"192.0.2.0\\0/24\"", "\"192.0.2.1\\0junk/32\"", "0x7f000001/32", "127.1/32",
        "203.0.113.0/24", "198.51.100.7/32",
    ]
    static let strings = [
        "\"gatewarden: \"", "'$x'", "\"\\\\\"", "\"\\\"\"", "\"\\0\"", "\"\\x7f\"", "\"\\t\"", "é", "🔥", "\"\\u2028\"",
        String(repeating: "x", count: 127), String(repeating: "x", count: 128), String(repeating: "é", count: 100),
        "~", "null", "Null", "''", "\"\"", "off", "on", "Off", "yes", "no", "y", "n", "true", "false", "True",
        "enforce", "observe", "Enforce", "'enforce '", "prot%ected",
    ]
    static let structures = [
        "[]", "{}", "[1, 2]", "[[]]", "[{}]", "{a: 1}", "{rate: 1/s}", "{burst: 5}", "{rate: 1/s, burst: 5, extra: 1}",
        "{rate: [1/s], burst: {a: 1}}", "{rate: 1/s, burst: 1/s}", "{rate: ~, burst: ~}", "[443, [80]]",
        "!!binary aGk=", "!!str 443", "!!int 443", "!!int x", "!!float 1", "!!null ''", "!!bool maybe", "!!map {}",
        "!!seq []", "!!set {a}", "!!timestamp 2001-12-14", "!foo bar", "*undefined", "&anchor 5", "&a [*a]",
        "|\n  multi\n  line", ">\n  folded", "- 1\n- 2", "? a\n: b",
    ]
    static let all = numbers + rates + durations + addresses + strings + structures
}

/// How random mutations are named: `PREFIX-random-SEED-INDEX`.
enum FuzzNames {
    static func mutationName(prefix: String, seed: UInt64, index: Int) -> String { "\(prefix)-random-\(seed)-\(index)" }

    static func mutation(_ name: String, prefix: String) -> (UInt64, Int)? {
        let parts = name.split(separator: "-")
        guard parts.count == 4, parts[0] == prefix, parts[1] == "random", let seed = UInt64(parts[2]), let index = Int(parts[3]) else {
            return nil
        }
        return (seed, index)
    }
}

/// Random edits of a document's bytes.
enum Mutator {
    static func mutate(_ original: [UInt8], donors: [[UInt8]], using random: inout SeededRandom) -> [UInt8] {
        var bytes = original
        for _ in 0...Int(random.next() % 4) {
            bytes = edit(bytes, donors: donors, using: &random)
        }
        return bytes
    }

    private static let interesting: [UInt8] = Array(":{}[],&*!|>-#%@`'\"\t\n\r\0 ?\\/.0123456789".utf8) + [0x7f, 0x80, 0xc3, 0xff]

    private static func edit(_ bytes: [UInt8], donors: [[UInt8]], using random: inout SeededRandom) -> [UInt8] {
        var bytes = bytes
        func position(_ limit: Int) -> Int { limit <= 0 ? 0 : Int(random.next() % UInt64(limit)) }
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
        switch random.next() % 11 {
        case 0: // truncate
            bytes = Array(bytes.prefix(position(bytes.count + 1)))
        case 1: // flip a bit
            if !bytes.isEmpty { bytes[position(bytes.count)] ^= 1 << UInt8(random.next() % 8) }
        case 2: // an interesting byte, replacing one or inserted
            let byte = interesting[position(interesting.count)]
            if random.next() % 2 == 0, !bytes.isEmpty { bytes[position(bytes.count)] = byte } else { bytes.insert(byte, at: position(bytes.count + 1)) }
        case 3: // invalid UTF-8
            let sequences: [[UInt8]] = [[0xff], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xc0, 0x80], [0x80]]
            bytes.insert(contentsOf: sequences[position(sequences.count)], at: position(bytes.count + 1))
        case 4: // a digit run made huge, negative or zero
            let replacements = ["18446744073709551616", "-1", "0", "99999999999999999999999", "1e400", "4294967296", ""]
            if let start = (0..<bytes.count).filter({ (48...57).contains(bytes[$0]) }).randomElement(using: &random) {
                var end = start
                while end < bytes.count, (48...57).contains(bytes[end]) { end += 1 }
                bytes.replaceSubrange(start..<end, with: Array(replacements[position(replacements.count)].utf8))
            }
        case 5: // repeat a line
            if !lines.isEmpty { let line = position(lines.count); lines.insert(lines[line], at: line) }
            bytes = Array(lines.joined(separator: [UInt8(ascii: "\n")]))
        case 6: // delete a line
            if !lines.isEmpty { lines.remove(at: position(lines.count)) }
            bytes = Array(lines.joined(separator: [UInt8(ascii: "\n")]))
        case 7: // indent a line with a tab or spaces
            if !lines.isEmpty {
                let indents: [[UInt8]] = [[0x09], [0x20], [0x20, 0x20, 0x20], [0x09, 0x20]]
                lines[position(lines.count)].insert(contentsOf: indents[position(indents.count)], at: 0)
            }
            bytes = Array(lines.joined(separator: [UInt8(ascii: "\n")]))
        case 8: // a line from another document
            let donor = donors[position(donors.count)].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            if !donor.isEmpty { lines.insert(Array(donor[position(donor.count)]), at: position(lines.count + 1)) }
            bytes = Array(lines.joined(separator: [UInt8(ascii: "\n")]))
        case 9: // a span repeated many times
            if !bytes.isEmpty {
                let start = position(bytes.count)
                let span = Array(bytes[start..<min(bytes.count, start + 1 + position(16))])
                bytes.insert(contentsOf: Array(Array(repeating: span, count: 1 + position(2000)).joined()), at: start)
            }
        default: // a span deleted
            if !bytes.isEmpty {
                let start = position(bytes.count)
                bytes.removeSubrange(start..<min(bytes.count, start + 1 + position(32)))
            }
        }
        return bytes
    }
}
