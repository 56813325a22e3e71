import ArgumentParser
import Foundation
import GatewardenKernel
import GatewardenPolicy
import GatewardenCore
import GatewardenDataPlane

/// How long a changing command (load, unload, block, unblock) waits for another one changing
/// the same network namespace; the wait itself is `ChangeLock`'s.
struct ChangeLockOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "How long to wait while another gatewarden changes the same network namespace: 30s, 2m; 0s fails at once.",
        discussion: "Changes to one namespace run one at a time, so that XDP and nftables always run the same policy and no ban is lost.",
        valueName: "duration"))
    var lockWait: DurationArgument?

    /// Runs `body` holding the lock of `instance`'s namespace; says on stderr when it has to wait.
    func holding<T>(_ instance: InstanceOptions, command: String, _ body: () throws -> T) throws -> T {
        try holding(try instance.namespace(), command: command, body)
    }

    /// Runs `body` holding the lock of `namespace`; says on stderr when it has to wait.
    func holding<T>(_ namespace: NetworkNamespace, command: String, _ body: () throws -> T) throws -> T {
        try ChangeLock.holding(namespace, command: command, waiting: lockWait?.value ?? ChangeLock.defaultWait,
                               notice: { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }, body)
    }
}
