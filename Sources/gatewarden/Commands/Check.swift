import ArgumentParser
import GatewardenPolicy
import GatewardenCore

/// `gatewarden check`: validates a policy.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a policy: exit 0, or print every problem as FILE:LINE:COLUMN: key: what is wrong.",
        discussion: "Unknown keys, wrong types and impossible values are all errors. Nothing is applied."
    )

    @OptionGroup var policyOptions: PolicyOptions

    func run() throws {
        do {
            let policy = try policyOptions.load()
            print("\(policyOptions.name): OK (\(Summary(policy)))")
        } catch let problems as PolicyProblems {
            print(problems)
            throw ExitCode(1)
        }
    }
}

/// A one-line summary of a policy's limits.
struct Summary: CustomStringConvertible {
    let policy: Policy

    init(_ policy: Policy) {
        self.policy = policy
    }

    var description: String {
        func rate(_ rate: Rate?) -> String { rate.map(\.description) ?? "off" }
        return "ports \(policy.protectedPorts.map(String.init).joined(separator: ",")); per source \(rate(policy.perSource)); "
            + "per /\(policy.ipv4SubnetPrefix) (IPv6 /\(policy.ipv6SubnetPrefix)) \(rate(policy.perSubnet)); "
            + "SYN \(rate(policy.newConnectionsPerSource)); "
            + "\(policy.allowlist.count) allowed, \(policy.blocklist.count) banned"
    }
}
