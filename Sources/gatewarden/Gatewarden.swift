import ArgumentParser
import GatewardenCore

/// The `gatewarden` command: installs the kernel programs, serves their metrics.
@main
struct Gatewarden: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatewarden",
        abstract: "Kernel-level rate limiting for API gateways: XDP and nftables, with a Prometheus exporter.",
        discussion: """
        One policy drives an XDP program, which drops volumetric floods at the driver, and an nftables \
        table (inet gatewarden), which handles what needs connection state. `serve` exports both to Prometheus.
        """,
        version: GatewardenVersion.string,
        subcommands: [Load.self, Unload.self, Status.self, Check.self, Render.self, Persist.self, Bans.self, Block.self, Unblock.self,
                      Enforce.self, Serve.self]
    )
}
