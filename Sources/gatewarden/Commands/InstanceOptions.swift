import ArgumentParser
import GatewardenKernel
import GatewardenLoad

/// `--netns NAME`: the network namespace a command acts in; without it, the one it runs in. Every
/// command that names a namespace declares it through this one group.
struct NamespaceOption: ParsableArguments {
    @Option(help: ArgumentHelp(
        "A network namespace made by `ip netns add`, where the interface, the nftables table and the bans live.",
        discussion: "BPF pins stay in the host's /sys/fs/bpf, under a path naming the namespace and interface.",
        valueName: "name"))
    var netns: String?

    func namespace() throws -> NetworkNamespace {
        try NetworkNamespace(optionalName: netns)
    }
}

/// Names one Gatewarden instance: an interface, in the current or a named network namespace.
struct InstanceOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "The interface the XDP program attaches to.")
    var interface: String

    @OptionGroup var target: NamespaceOption

    var netns: String? { target.netns }

    func namespace() throws -> NetworkNamespace {
        try target.namespace()
    }
}

extension XDPModeChoice: ExpressibleByArgument {}
