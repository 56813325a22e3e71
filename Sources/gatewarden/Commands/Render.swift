import ArgumentParser
import Foundation
import GatewardenKernel
import GatewardenPolicy
import GatewardenCore

/// `gatewarden render`: prints the nftables ruleset a policy renders to.
struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the nftables ruleset exactly as `load` would apply it.",
        discussion: """
        The conntrack cap is a share of nf_conntrack_max in the namespace; while nf_conntrack is not \
        loaded there the cap rule is left out (and `load` adds it once its dry run has loaded the module).
        """
    )

    @OptionGroup var policyOptions: PolicyOptions

    @OptionGroup var target: NamespaceOption

    @Flag(help: "Print the transaction `load` runs (flush and refill, keeping bans) instead of the table; as for a namespace without the table, so every state set is made anew.")
    var transaction = false

    func run() throws {
        let policy: Policy
        do {
            policy = try policyOptions.load()
        } catch let problems as PolicyProblems {
            FileHandle.standardError.write(Data("\(problems)\n".utf8))
            throw ExitCode(1)
        }
        let ruleset = NFTablesRuleset(policy: policy, conntrackMax: try Conntrack.maximum(in: target.namespace()))
        print(transaction ? ruleset.applyTransaction : ruleset.text, terminator: "")
    }
}
