import ArgumentParser
import Foundation
import GatewardenKernel
import GatewardenPolicy
import GatewardenCore
import GatewardenDataPlane

/// `gatewarden block`: `bans add`, named by an instance as before.
struct Block: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ban a source CIDR in both layers, for a time or until unblocked (same as `bans add`).",
        discussion: """
        The ban is stored first (it comes back after a restart or a reboot), then written to the XDP \
        blocklist and the nftables ban set: it takes effect on the next packet and keeps its own lifetime \
        whatever the policy lists: a load never shortens or lifts it. Blocking a network already blocked \
        sets its ban to the new duration. The interface names an instance that must be loaded; the ban \
        applies to every interface of the namespace.
        """
    )

    @Argument(help: ArgumentHelp("The source network, e.g. 198.51.100.0/24 or 2001:db8::/48.", valueName: "cidr"))
    var cidr: String

    @OptionGroup var instance: InstanceOptions

    @Option(name: .customLong("for"), help: ArgumentHelp("How long the ban lasts: 90s, 30m, 1h, 7d, at most \(PolicyDuration.maximum); omitted, until unblocked.",
                                                         valueName: "duration"))
    var duration: DurationArgument?

    @Option(help: ArgumentHelp("Where the ban store lives.", valueName: "dir"))
    var stateDir: String = BanStateOptions.defaultDirectory

    @OptionGroup var lock: ChangeLockOptions

    func run() throws {
        _ = try loadedMaps(instance)
        try BanChange.add(cidr, for: duration, state: BanStateOptions(netns: instance.netns, stateDir: stateDir),
                          lock: lock, command: "block")
    }
}

/// `gatewarden unblock`: `bans remove`, named by an instance as before.
struct Unblock: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Lift the ban `block` (or enforce) put on a source CIDR (same as `bans remove`).",
        discussion: "A ban the policy lists stays until a policy without it is loaded."
    )

    @Argument(help: ArgumentHelp("The banned network, exactly as it was blocked.", valueName: "cidr"))
    var cidr: String

    @OptionGroup var instance: InstanceOptions

    @Option(help: ArgumentHelp("Where the ban store lives.", valueName: "dir"))
    var stateDir: String = BanStateOptions.defaultDirectory

    @OptionGroup var lock: ChangeLockOptions

    func run() throws {
        _ = try loadedMaps(instance)
        try BanChange.remove(cidr, state: BanStateOptions(netns: instance.netns, stateDir: stateDir), lock: lock, command: "unblock")
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
