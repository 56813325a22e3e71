import Foundation
import GatewardenKernel
import GatewardenYAML
import Yams
import GatewardenCore
import GatewardenDataPlane

/// Reads a policy from YAML, checking every key. Unknown keys, wrong types and impossible values
/// are all problems; the parser reports every one it finds, with its line, column and key.
///
///     do {
///         let policy = try PolicyParser.parse(yaml: text, file: "policy.yaml")
///     } catch let problems as PolicyProblems {
///         print(problems)   // policy.yaml:7:12: limits.per_source.burst: ...
///     }
///
/// Keys left out keep the built-in default's values; `docs/policy.md` documents every key.
public struct PolicyParser {
    private let file: String
    private var problems: [PolicyProblem] = []

    private init(file: String) {
        self.file = file
    }

    public static func parse(yaml text: String, file: String) throws -> Policy {
        var parser = PolicyParser(file: file)
        let policy = parser.read(text)
        guard parser.problems.isEmpty else { throw PolicyProblems(problems: parser.problems) }
        return policy
    }

    public static func parse(file path: String) throws -> Policy {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PolicyProblems(problems: [PolicyProblem(file: path, line: 0, column: 0, key: "--policy",
                                                          message: "cannot read the file")])
        }
        return try parse(data: data, file: path)
    }

    /// A policy file's bytes, read as `file`; bytes that are not UTF-8 are a problem at the first bad one.
    public static func parse(data: Data, file path: String) throws -> Policy {
        guard let text = String(data: data, encoding: .utf8) else {
            let (line, column) = firstInvalidUTF8(in: data)
            throw PolicyProblems(problems: [PolicyProblem(file: path, line: line, column: column, key: "(yaml)",
                                                          message: "not valid UTF-8")])
        }
        return try parse(yaml: text, file: path)
    }

    /// Where the first byte that is not UTF-8 sits, as line and column (counted in characters).
    private static func firstInvalidUTF8(in data: Data) -> (line: Int, column: Int) {
        var bytes = data.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        var line = 1, column = 1
        while case .valid(let encoded) = parser.parseScalar(from: &bytes) {
            if Unicode.UTF8.decode(encoded) == "\n" { line += 1; column = 1 } else { column += 1 }
        }
        return (line, column)
    }

    // MARK: Problems

    private mutating func problem(_ node: Node?, _ key: String, _ message: String) {
        problems.append(PolicyProblem(file: file, line: node?.mark?.line ?? 1, column: node?.mark?.column ?? 1,
                                      key: key, message: message))
    }

    // MARK: The document

    private mutating func read(_ text: String) -> Policy {
        var policy = Policy.builtInDefault
        let root: Node
        do {
            guard let composed = try YAMLDocument.compose(text) else { return policy }
            root = composed
        } catch {
            problems.append(PolicyProblem(file: file, line: error.line, column: error.column, key: error.key, message: error.message))
            return policy
        }
        guard let mapping = root.mapping else {
            problem(root, "(root)", "expected a mapping of policy keys")
            return policy
        }
        for (keyNode, value) in mapping {
            let key = YAMLDocument.keyName(keyNode)
            switch key {
            case "mode": policy.mode = mode(value, key) ?? policy.mode
            case "protected_ports": policy.protectedPorts = ports(value, key, allowEmpty: false) ?? policy.protectedPorts
            case "auth_ports": policy.authPorts = ports(value, key, allowEmpty: true) ?? policy.authPorts
            case "subnets": readSubnets(value, into: &policy)
            case "limits": readLimits(value, into: &policy)
            case "escalation": readEscalation(value, into: &policy)
            case "blocklist": readBlocklist(value, into: &policy)
            case "allowlist": policy.allowlist = prefixes(value, key, atMost: XDPMaps.allowlistCapacity) ?? policy.allowlist
            case "log_prefix": policy.logPrefix = logPrefix(value, key)
            case "ct_mark_drop": policy.ctMarkDrop = integer(value, key, in: 1...Int(UInt32.max)).map(UInt32.init)
            case "xdp": readXDP(value, into: &policy)
            case "enforce": readEnforce(value, into: &policy)
            case "tls_session_reuse": policy.tlsSessionReuse = tlsSessionReuse(value, key)
            default: problem(keyNode, key, "unknown key")
            }
        }
        checkOverlaps(policy, root: mapping)
        return policy
    }

    private mutating func readSubnets(_ node: Node, into policy: inout Policy) {
        forEachKey(node, "subnets") { parser, key, value, path in
            switch key {
            case "ipv4_prefix": policy.ipv4SubnetPrefix = parser.integer(value, path, in: 8...32) ?? policy.ipv4SubnetPrefix
            case "ipv6_prefix": policy.ipv6SubnetPrefix = parser.integer(value, path, in: 48...64) ?? policy.ipv6SubnetPrefix
            default: return false
            }
            return true
        }
    }

    private mutating func readLimits(_ node: Node, into policy: inout Policy) {
        forEachKey(node, "limits") { parser, key, value, path in
            switch key {
            case "per_source": policy.perSource = parser.rate(value, path, current: policy.perSource)
            case "per_subnet": policy.perSubnet = parser.rate(value, path, current: policy.perSubnet)
            case "new_connections_per_source":
                policy.newConnectionsPerSource = parser.rate(value, path, current: policy.newConnectionsPerSource)
            case "auth_per_subnet": policy.authPerSubnet = parser.rate(value, path, current: policy.authPerSubnet)
            case "concurrent_connections_per_source":
                policy.concurrentConnectionsPerSource = parser.isOff(value)
                    ? nil : parser.integer(value, path, in: 1...65535) ?? policy.concurrentConnectionsPerSource
            case "conntrack_cap": policy.conntrackCapPercent = parser.percent(value, path, current: policy.conntrackCapPercent)
            default: return false
            }
            return true
        }
    }

    private mutating func readEscalation(_ node: Node, into policy: inout Policy) {
        if isOff(node) {
            policy.escalationPerSubnet = nil
            return
        }
        forEachKey(node, "escalation") { parser, key, value, path in
            switch key {
            case "per_subnet": policy.escalationPerSubnet = parser.rate(value, path, current: policy.escalationPerSubnet)
            case "block_for": policy.escalationBlockFor = parser.duration(value, path) ?? policy.escalationBlockFor
            default: return false
            }
            return true
        }
    }

    private mutating func readBlocklist(_ node: Node, into policy: inout Policy) {
        forEachKey(node, "blocklist") { parser, key, value, path in
            switch key {
            case "timeout": policy.blocklistTimeout = parser.duration(value, path) ?? policy.blocklistTimeout
            case "size": policy.blocklistSize = parser.integer(value, path, in: 16...(1 << 24)) ?? policy.blocklistSize
            case "entries": policy.blocklist = parser.prefixes(value, path, atMost: XDPMaps.blocklistCapacity) ?? policy.blocklist
            default: return false
            }
            return true
        }
    }

    private mutating func readEnforce(_ node: Node, into policy: inout Policy) {
        forEachKey(node, "enforce") { parser, key, value, path in
            var settings = policy.enforce
            func duration(_ current: Duration) -> Duration { parser.duration(value, path).map(Duration.init) ?? current }
            switch key {
            case "interval":
                settings.interval = duration(settings.interval)
                if settings.interval > .seconds(3600) {
                    parser.problem(value, path, "expected at most 1h")
                    settings.interval = policy.enforce.interval
                }
            case "violations": settings.violations = parser.integer(value, path, in: 1...EnforceSettings.maximumViolations) ?? settings.violations
            case "window": settings.window = duration(settings.window)
            case "ban_for": settings.banFor = duration(settings.banFor)
            case "max_ban": settings.maxBan = duration(settings.maxBan)
            case "history": settings.history = duration(settings.history)
            case "max_new_bans": settings.maxNewBansPerInterval = parser.integer(value, path, in: 1...100_000) ?? settings.maxNewBansPerInterval
            default: return false
            }
            policy.enforce = settings
            return true
        }
        // Keys that are each fine but contradict one another: reported at the section.
        for message in policy.enforce.problems { problem(node, "enforce", message) }
    }

    private mutating func readXDP(_ node: Node, into policy: inout Policy) {
        forEachKey(node, "xdp") { parser, key, value, path in
            switch key {
            case "enabled":
                if let flag = value.bool { policy.xdpEnabled = flag } else { parser.problem(value, path, "expected true or false") }
            case "sources_map_size": policy.xdpSourcesMapSize = parser.integer(value, path, in: 1024...(1 << 26)) ?? policy.xdpSourcesMapSize
            case "subnets_map_size": policy.xdpSubnetsMapSize = parser.integer(value, path, in: 1024...(1 << 24)) ?? policy.xdpSubnetsMapSize
            default: return false
            }
            return true
        }
    }

    /// The feed's section: `off`, or a mapping with `log` and any of the optional keys.
    private mutating func tlsSessionReuse(_ node: Node, _ path: String) -> TLSSessionReuseSettings? {
        if isOff(node) { return nil }
        guard let mapping = node.mapping else {
            problem(node, path, "expected a mapping with at least `log`, or off")
            return nil
        }
        guard mapping["log"] != nil else {
            problem(node, "\(path).log", "missing: the path of the nginx log in the gatewarden format")
            return nil
        }
        var settings = TLSSessionReuseSettings(log: "")
        forEachKey(node, path) { parser, key, value, path in
            switch key {
            case "log": settings.log = parser.absolutePath(value, path) ?? ""
            case "min_connections":
                settings.minConnections = parser.integer(value, path, in: TLSSessionReuseSettings.minConnectionsRange)
                    ?? settings.minConnections
            case "new_session_ratio": settings.newSessionRatio = parser.ratio(value, path) ?? settings.newSessionRatio
            case "window":
                if let window = parser.duration(value, path) {
                    let range = TLSSessionReuseSettings.windowRange
                    if range.contains(window.seconds) {
                        settings.window = window
                    } else {
                        parser.problem(value, path, "\(window) is out of range \(PolicyDuration(seconds: range.lowerBound))"
                            + "...\(PolicyDuration(seconds: range.upperBound))")
                    }
                }
            case "prefix":
                settings.ipv4Prefix = parser.integer(value, path, in: TLSSessionReuseSettings.ipv4PrefixRange) ?? settings.ipv4Prefix
            case "ipv6_prefix":
                settings.ipv6Prefix = parser.integer(value, path, in: TLSSessionReuseSettings.ipv6PrefixRange) ?? settings.ipv6Prefix
            case "ban_for": settings.banFor = parser.duration(value, path) ?? settings.banFor
            default: return false
            }
            return true
        }
        // A `log` that was refused leaves the feed off (the problem is already reported).
        return settings.log.isEmpty ? nil : settings
    }

    /// An absolute file path: the feed runs as a service, whose working directory is no place to look.
    private mutating func absolutePath(_ node: Node, _ key: String) -> String? {
        guard let text = node.string, node.scalar != nil, text.hasPrefix("/"), !text.contains("\0"),
              !text.hasSuffix("/") else {
            problem(node, key, "expected the absolute path of a file, such as /var/log/nginx/gatewarden.log")
            return nil
        }
        return text
    }

    /// A share strictly between 0 and 1: 0.95, or 95%.
    private mutating func ratio(_ node: Node, _ key: String) -> Double? {
        let text = node.string ?? ""
        let value = text.hasSuffix("%") ? Double(text.dropLast()).map { $0 / 100 } : Double(text)
        guard node.scalar != nil, let value, value > 0, value < 1 else {
            problem(node, key, "expected a share between 0 and 1 (exclusive), such as 0.95 or 95%")
            return nil
        }
        return value
    }

    /// An allowed source must not also be banned: which layer wins would depend on rule order.
    private mutating func checkOverlaps(_ policy: Policy, root: Node.Mapping) {
        guard let entries = root["blocklist"]?.mapping?["entries"]?.sequence else { return }
        for (index, node) in entries.enumerated() {
            guard let text = node.string, let banned = try? AddressPrefix(text) else { continue }
            if let allowed = policy.allowlist.first(where: { $0.overlaps(banned) }) {
                problem(node, "blocklist.entries[\(index)]", "\(banned) overlaps allowlist entry \(allowed)")
            }
        }
    }

    // MARK: Values

    /// Visits a mapping's keys; `body` returns false for a key it does not know.
    private mutating func forEachKey(_ node: Node, _ path: String,
                                     _ body: (inout PolicyParser, String, Node, String) -> Bool) {
        guard let mapping = node.mapping else {
            problem(node, path, "expected a mapping")
            return
        }
        for (keyNode, value) in mapping {
            let key = YAMLDocument.keyName(keyNode)
            if !body(&self, key, value, "\(path).\(key)") { problem(keyNode, "\(path).\(key)", "unknown key") }
        }
    }

    private func isOff(_ node: Node) -> Bool {
        node.scalar?.string == "off" || node.bool == false
    }

    private mutating func integer(_ node: Node, _ key: String, in range: ClosedRange<Int>) -> Int? {
        guard node.scalar != nil, let value = node.int else {
            problem(node, key, "expected a whole number from \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        guard range.contains(value) else {
            problem(node, key, "\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return value
    }

    private mutating func ports(_ node: Node, _ key: String, allowEmpty: Bool) -> [UInt16]? {
        guard let sequence = node.sequence else {
            problem(node, key, "expected a list of ports")
            return nil
        }
        var ports: [UInt16] = []
        var seen = Set<UInt16>()
        for (index, item) in sequence.enumerated() {
            guard let port = integer(item, "\(key)[\(index)]", in: 1...65535) else { continue }
            if !seen.insert(UInt16(port)).inserted { problem(item, "\(key)[\(index)]", "port \(port) is listed twice") }
            ports.append(UInt16(port))
        }
        if ports.isEmpty && !allowEmpty && sequence.isEmpty { problem(node, key, "at least one port is needed") }
        return ports
    }

    /// A list of CIDRs, of at most `capacity` entries: the XDP map that holds them, checked here so
    /// that `check` refuses what `load` could only half-apply.
    private mutating func prefixes(_ node: Node, _ key: String, atMost capacity: Int) -> [AddressPrefix]? {
        guard let sequence = node.sequence else {
            problem(node, key, "expected a list of CIDRs")
            return nil
        }
        guard sequence.count <= capacity else {
            problem(node, key, "\(sequence.count) entries; the XDP map holding them has room for \(capacity)")
            return nil
        }
        var prefixes: [AddressPrefix] = []
        for (index, item) in sequence.enumerated() {
            guard let text = item.string, item.scalar != nil else {
                problem(item, "\(key)[\(index)]", "expected a CIDR such as 192.0.2.0/24")
                continue
            }
            do {
                let prefix = try AddressPrefix(text)
                if let listProblem = prefix.listProblem {
                    problem(item, "\(key)[\(index)]", "'\(text)': \(listProblem)")
                    continue
                }
                prefixes.append(prefix)
            } catch let error as AddressPrefix.ParseError {
                problem(item, "\(key)[\(index)]", error.reason)
            } catch {
                problem(item, "\(key)[\(index)]", "\(error)")
            }
        }
        return prefixes
    }

    /// A rate: `off`, or a mapping `{rate: N/unit, burst: N}` (the burst may be left out to keep the default).
    private mutating func rate(_ node: Node, _ key: String, current: Rate?) -> Rate? {
        if isOff(node) { return nil }
        guard let mapping = node.mapping else {
            problem(node, key, "expected {rate: N/second|minute|hour, burst: N} or off")
            return current
        }
        var parsed = current ?? Rate(1, per: .second, burst: 1)
        var sawRate = current != nil
        for (keyNode, value) in mapping {
            switch keyNode.string {
            case "rate":
                guard let text = value.string, let (count, unit) = Rate.parse(text) else {
                    problem(value, "\(key).rate", "expected N/second, N/minute or N/hour")
                    return current
                }
                guard count > 0 else {
                    problem(value, "\(key).rate", "a rate of 0 refuses everything; write `off` to disable the limit")
                    return current
                }
                guard count <= Rate.maximumPerSecond * unit.seconds else {
                    problem(value, "\(key).rate", "above \(Rate.maximumPerSecond)/second, one packet a nanosecond: "
                        + "neither layer can time a faster rate")
                    return current
                }
                parsed.count = count
                parsed.unit = unit
                sawRate = true
            case "burst":
                guard let burst = integer(value, "\(key).burst", in: 1...Int(Int32.max)) else { return current }
                parsed.burst = UInt64(burst)
            default:
                problem(keyNode, "\(key).\(YAMLDocument.keyName(keyNode))", "unknown key")
            }
        }
        guard sawRate else {
            problem(node, "\(key).rate", "missing")
            return current
        }
        if parsed.burst < parsed.packetsPerSecondCeiling {
            let node = mapping["burst"] ?? node
            problem(node, "\(key).burst", "burst \(parsed.burst) is below the rate (\(parsed.packetsPerSecondCeiling) per second): "
                + "the limit would refuse its own rate")
            return current
        }
        if (parsed.refillNanoseconds ?? .max) / 1_000_000_000 > PolicyDuration.maximum.seconds {
            let node = mapping["burst"] ?? node
            problem(node, "\(key).burst", "burst \(parsed.burst) at \(parsed.nftables) takes longer than "
                + "\(PolicyDuration.maximum) to refill: write `off` for no limit")
            return current
        }
        return parsed
    }

    private mutating func mode(_ node: Node, _ key: String) -> EnforcementMode? {
        guard node.scalar != nil, let text = node.string, let mode = EnforcementMode(rawValue: text) else {
            problem(node, key, "expected " + EnforcementMode.allCases.map(\.rawValue).joined(separator: " or "))
            return nil
        }
        return mode
    }

    private mutating func percent(_ node: Node, _ key: String, current: Int?) -> Int? {
        if isOff(node) { return nil }
        let text = node.string ?? ""
        guard node.scalar != nil, let value = Int(text.hasSuffix("%") ? String(text.dropLast()) : text), (1...100).contains(value) else {
            problem(node, key, "expected a percentage from 1% to 100%, or off")
            return current
        }
        return value
    }

    private mutating func duration(_ node: Node, _ key: String) -> PolicyDuration? {
        guard let text = node.string, node.scalar != nil, let duration = PolicyDuration.parse(text) else {
            problem(node, key, "expected a duration from 1s to \(PolicyDuration.maximum), such as 90s, 30m, 1h or 7d")
            return nil
        }
        return duration
    }

    private mutating func logPrefix(_ node: Node, _ key: String) -> String? {
        guard let text = node.string, node.scalar != nil else {
            problem(node, key, "expected a string")
            return nil
        }
        // nftables reads `$` as a variable and `\\` as an escape inside its quotes; control characters
        // (a NUL among them, which YAML can carry) have no place in a log line.
        let printable = text.unicodeScalars.allSatisfy { (0x20...0x7e).contains($0.value) && !"\"$\\".unicodeScalars.contains($0) }
        guard text.count <= 127, printable else {
            problem(node, key, "expected at most 127 printable ASCII characters without quotes, `$` or backslashes")
            return nil
        }
        return text
    }
}
