import ArgumentParser
import Foundation
import GatewardenEnforce
import GatewardenKernel
import GatewardenPolicy

/// `gatewarden enforce`: the enforce loop alone (`serve` runs it too, unless `--no-enforce`).
struct Enforce: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ban persistent violators in both layers, remember bans across restarts and repair what others remove.",
        discussion: """
        Every enforce.interval (10s) it reads XDP's per-source and per-subnet drops and nftables' escalations; \
        a source or subnet with drops in enforce.violations (5) intervals within enforce.window (60s) is banned \
        in the XDP blocklist and the nftables ban set, for enforce.ban_for (30m), doubled for each repeat offence \
        up to enforce.max_ban (7d). Bans are written to the store first and come back after a restart or a \
        reboot; a table or XDP program another tool removed is put back (only where `load` put it). In observe \
        mode it records what it would ban and bans nothing. Stopping it never lifts a ban.
        """
    )

    @OptionGroup var state: BanStateOptions

    @OptionGroup var policyOptions: PolicyOptions

    @Option(help: ArgumentHelp("Run this many intervals, then exit (0: until stopped).", valueName: "count"))
    var intervals = 0

    func run() throws {
        let policy = try policyOptions.load()
        let loop = try EnforceRunner.makeLoop(state: state, policy: policy)
        let stopSignals = SignalSet([SIGINT, SIGTERM])
        stopSignals.block()
        FileHandle.standardError.write(Data(("gatewarden: enforcing \(policyOptions.name) in \(loop.namespace); "
            + "ban store \(state.directory)\n").utf8))
        if intervals > 0 {
            for index in 0..<intervals {
                let outcome = loop.runOnce()
                EnforceRunner.report(outcome)
                if index + 1 < intervals { Thread.sleep(forTimeInterval: policy.enforce.interval.timeInterval) }
            }
            return
        }
        let stop = StopFlag()
        let thread = Thread { loop.run(until: { stop.isSet }) ; stop.finished() }
        thread.start()
        let signal = stopSignals.wait()
        stop.set()
        stop.waitFinished()
        FileHandle.standardError.write(Data("gatewarden: enforce stopped on signal \(signal); every ban stays\n".utf8))
    }
}

/// Builds the loop the same way for `enforce` and `serve`.
enum EnforceRunner {
    static func makeLoop(state: BanStateOptions, policy: Policy) throws -> EnforceLoop {
        let store = try state.openStore()
        // The feeds the policy configures: today the nginx TLS-session-reuse log.
        let feeds: [BanFeed] = policy.tlsSessionReuse.map { [TLSSessionReuseFeed(settings: $0)] } ?? []
        return try EnforceLoop(namespace: try state.namespace(), policy: policy, store: store, stateDirectory: state.directory,
                               feeds: feeds)
    }

    static func report(_ outcome: EnforceLoop.Outcome) {
        for error in outcome.errors { FileHandle.standardError.write(Data("gatewarden: enforce: \(error)\n".utf8)) }
        for ban in outcome.promoted {
            print("\(outcome.observing ? "would ban" : "banned") \(ban.prefix) (\(ban.origin), offence \(ban.offence))")
        }
    }
}

/// A flag one thread sets and another polls, and a way to wait for the poller to finish.
final class StopFlag: @unchecked Sendable {
    private let condition = NSCondition()
    private var stopped = false
    private var done = false

    var isSet: Bool { condition.withLock { stopped } }

    func set() { condition.withLock { stopped = true } }

    func finished() {
        condition.withLock {
            done = true
            condition.broadcast()
        }
    }

    func waitFinished() {
        condition.withLock { while !done { condition.wait() } }
    }
}
