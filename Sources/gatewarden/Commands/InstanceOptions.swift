import ArgumentParser
import GatewardenKernel
import GatewardenLoad

/// Names one Gatewarden instance: an interface, in the current or a named network namespace.
struct InstanceOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "The interface the XDP program attaches to.")
    var interface: String

    @Option(help: ArgumentHelp(
        "A network namespace made by `ip netns add`, where the interface and the nftables table live.",
        discussion: "BPF pins stay in the host's /sys/fs/bpf, under a path naming the namespace and interface.",
        valueName: "name"))
    var netns: String?

    func namespace() throws -> NetworkNamespace {
        try NetworkNamespace(optionalName: netns)
    }
}

extension XDPModeChoice: ExpressibleByArgument {}
