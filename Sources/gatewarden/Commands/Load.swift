import ArgumentParser
import GatewardenKernel
import GatewardenPolicy

/// `gatewarden load`: attaches the XDP program and applies the nftables table.
struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attach the XDP program to an interface and apply the nftables table.",
        discussion: """
        Everything goes through libbpf and libnftables. The program stays attached after this command \
        exits (its bpf_link is pinned), and running `load` again replaces it atomically, keeping the \
        pinned maps: counters and state survive reloads. The nftables table is checked before anything \
        is applied, and replaced in one transaction.
        """
    )

    @OptionGroup var instance: InstanceOptions

    @Option(help: "Where the XDP program runs: native (in the driver) or generic (any interface, slower).")
    var xdpMode: XDPMode = .native

    func run() throws {
        let deployment = try Deployment(namespace: instance.namespace(), interface: instance.interface)
        let outcome = try deployment.install(policy: .builtInDefault, mode: xdpMode)
        print(outcome)
    }
}
