import Foundation
import GatewardenKernel
import GatewardenPolicy

/// Holds the conntrack cap: while the namespace tracks as many connections as the cap the loaded
/// table names, its `conntrack_full` set holds `tcp` and the `conntrack-cap` rule resets new
/// connections to the protected ports.
///
/// A rule cannot read the table's fill at a constant cost (`ct count` over every connection walks
/// them all once a jiffy), so the decision is made here, four times a second, from
/// nf_conntrack_count; the rule's per-packet cost is one lookup in a one-element set.
///
/// It fails open: the element lives two seconds and is renewed while the table is over the cap, so
/// if this process dies the cap lapses within two seconds and the kernel's own nf_conntrack_max
/// still holds. It never fails closed.
final class ConntrackCapGuard: @unchecked Sendable {
    static let interval: TimeInterval = 0.25
    /// How long the switch stays on without being renewed.
    static let hold = "2s"
    /// How often the cap is read again from the table (a `load` may change it, or remove the table).
    static let capRefresh: TimeInterval = 2

    let namespace: NetworkNamespace
    private let stopping = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var thread: Thread?

    init(namespace: NetworkNamespace) {
        self.namespace = namespace
    }

    func start() {
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "conntrack-cap-guard"
        thread.start()
        self.thread = thread
    }

    /// Stops checking and lifts the switch if it is on: without a guard, no cap.
    func stop() {
        guard thread != nil else { return }
        stopping.signal()
        finished.wait()
        thread = nil
    }

    private var table: String { "\(NFTablesRuleset.family) \(NFTablesRuleset.tableName)" }
    private var set: String { "\(table) \(NFTablesRuleset.conntrackFullSet)" }

    private func run() {
        var nft: NFTables?
        var cap: Int?
        var capReadAt = Date.distantPast
        var engaged = false
        repeat {
            do {
                let context = try nft ?? NFTables(namespace: namespace)
                nft = context
                if Date().timeIntervalSince(capReadAt) >= Self.capRefresh {
                    cap = try context.setShapes(family: NFTablesRuleset.family, table: NFTablesRuleset.tableName)[NFTablesRuleset.conntrackFullSet]
                        .flatMap { NFTablesRuleset.conntrackCap(fromComment: $0.comment) }
                    capReadAt = Date()
                }
                guard let cap, let count = try Conntrack.count(in: namespace) else { continue }
                if count >= cap {
                    // Replaced rather than added: adding an element that exists does not renew its timeout.
                    try context.run("flush set \(set)\nadd element \(set) { tcp timeout \(Self.hold) }")
                    if !engaged { say("conntrack holds \(count) connections, the cap is \(cap): new connections to the protected ports are reset") }
                    engaged = true
                } else if engaged {
                    try context.run("flush set \(set)")
                    say("conntrack holds \(count) connections, under the cap of \(cap): new connections are accepted again")
                    engaged = false
                }
            } catch {
                // The table may be between a delete and a load: try again next time with a fresh
                // context (libnftables contexts can keep a stale cache after an error).
                nft = nil
                capReadAt = .distantPast
            }
        } while stopping.wait(timeout: .now() + Self.interval) == .timedOut
        if engaged { _ = try? (nft ?? NFTables(namespace: namespace)).run("flush set \(set)") }
    }

    private func say(_ message: String) {
        FileHandle.standardError.write(Data("gatewarden: \(message)\n".utf8))
    }
}
