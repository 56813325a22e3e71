import Foundation
import GatewardenKernel
import GatewardenPolicy
import GatewardenTestSupport
import Testing

/// `check` accepts exactly what `load` accepts: every generated policy (PolicyFuzzCorpus) the
/// parser accepts renders to a transaction that nftables accepts, in the dry run `load` makes
/// before it changes anything.
@Suite("check accepts what load accepts", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct CheckMatchesLoadTests {
    @Test("nftables' dry run accepts the ruleset of every generated policy the parser accepts")
    func dryRun() throws {
        let name = "gwt-fuzz-\(getpid())"
        try Command.run(["ip", "netns", "add", name])
        defer { _ = try? Command.run(["ip", "netns", "del", name], check: false) }
        let namespace = try NetworkNamespace(named: name)
        var tried = Set<String>()
        var refused: [String] = []
        // Bounded: the corpus holds thousands of accepted policies, some with lists of 100,000 entries.
        let deadline = Date().addingTimeInterval(60)
        for input in PolicyFuzzCorpus.inputs(seed: 11) where tried.count < 1000 && Date() < deadline {
            guard let policy = try? PolicyParser.parse(data: Data(input.bytes), file: input.name) else { continue }
            // As `load` checks it: without the conntrack cap (nf_conntrack may not be loaded yet), then with it.
            for conntrackMax in [nil, 262144] {
                let transaction = NFTablesRuleset(policy: policy, conntrackMax: conntrackMax).applyTransaction
                // Huge lists cost nftables seconds each to check: the bulk tests load those.
                guard transaction.utf8.count <= 64 * 1024, tried.insert(transaction).inserted else { continue }
                do {
                    // A fresh context each time, as `load` makes: libnftables 1.0.6 can abort printing an
                    // error from a context that ran a dry run before.
                    try NFTables(namespace: namespace).run(transaction, dryRun: true)
                } catch {
                    refused.append("\(input.name) (`gatewarden-fuzz --show \(input.name)`): \(error)")
                }
            }
        }
        print("check-matches-load: \(tried.count) distinct accepted rulesets dry-run, \(refused.count) refused by nftables")
        #expect(tried.count >= 100)
        #expect(refused.isEmpty, "\(refused.prefix(20).joined(separator: "\n"))")
    }
}
