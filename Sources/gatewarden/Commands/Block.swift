import ArgumentParser
import Foundation
import GatewardenKernel
import GatewardenPolicy
import GatewardenCore
import GatewardenDataPlane

/// `gatewarden block`: bans a source network in the XDP blocklist.
struct Block: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drop all traffic from a source CIDR at the driver, for a time or until unblocked.",
        discussion: """
        The ban is an entry in the pinned blocklist map: it takes effect on the next packet, survives \
        reloads and exporter restarts, and expires by itself when given --for. It keeps its own \
        lifetime whatever the policy lists: a load never shortens or lifts it. Blocking a network \
        already blocked sets its manual ban to the new duration.
        """
    )

    @Argument(help: ArgumentHelp("The source network, e.g. 198.51.100.0/24 or 2001:db8::/48.", valueName: "cidr"))
    var cidr: String

    @OptionGroup var instance: InstanceOptions

    @Option(name: .customLong("for"), help: ArgumentHelp("How long the ban lasts: 90s, 30m, 1h, 7d, at most \(PolicyDuration.maximum); omitted, until unblocked.",
                                                         valueName: "duration"))
    var duration: BanDuration?

    @OptionGroup var lock: ChangeLockOptions

    func run() throws {
        let prefix = try AddressPrefix(cidr)
        try lock.holding(instance, command: "block") {
            let maps = try loadedMaps(instance)
            try maps.block(prefix, for: duration?.value)
        }
        print("blocked \(prefix) on '\(instance.interface)'" + (duration.map { " for \($0.text)" } ?? " until unblocked"))
    }
}

/// `gatewarden unblock`: lifts a ban.
struct Unblock: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Lift the ban `block` (or enforce) put on a source CIDR.",
        discussion: "A ban the policy lists stays until a policy without it is loaded."
    )

    @Argument(help: ArgumentHelp("The banned network, exactly as it was blocked.", valueName: "cidr"))
    var cidr: String

    @OptionGroup var instance: InstanceOptions

    @OptionGroup var lock: ChangeLockOptions

    func run() throws {
        let prefix = try AddressPrefix(cidr)
        let remaining = try lock.holding(instance, command: "unblock") { try loadedMaps(instance).unblock(prefix) }
        guard let remaining else {
            throw ValidationError("\(prefix) is not banned by `block` (or enforce) on '\(instance.interface)'")
        }
        print("unblocked \(prefix) on '\(instance.interface)'"
            + (remaining.contains(.policy) ? "; the policy still bans it until a policy without it is loaded" : ""))
    }
}

/// The maps of a loaded instance, or an error saying it is not loaded.
func loadedMaps(_ instance: InstanceOptions) throws -> XDPMaps {
    let layout = PinLayout(namespace: try instance.namespace(), interface: instance.interface)
    guard FileManager.default.fileExists(atPath: layout.directory) else {
        throw ValidationError("Gatewarden is not loaded on '\(instance.interface)' in \(layout.namespace) (\(layout.absence))")
    }
    return try XDPMaps(layout: layout)
}

/// A duration written like `90s`, `30m`, `1h` or `7d`.
struct BanDuration: ExpressibleByArgument {
    let value: Duration
    let text: String

    init?(argument: String) {
        guard let duration = PolicyDuration.parse(argument) else { return nil }
        value = .seconds(Int64(duration.seconds))
        text = argument
    }
}
