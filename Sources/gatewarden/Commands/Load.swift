import ArgumentParser
import GatewardenKernel
import GatewardenPolicy
import GatewardenLoad

/// `gatewarden load`: attaches the XDP program and applies the nftables table.
struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attach the XDP program to an interface and apply the nftables table.",
        discussion: """
        Everything goes through libbpf and libnftables. The program stays attached after this command \
        exits (its bpf_link is pinned), and running `load` again replaces it atomically, keeping the \
        pinned maps: counters and state survive reloads. The nftables table is checked before anything \
        is applied, and replaced in one transaction that keeps the bans; a policy with any problem \
        changes nothing. The XDP limits are written into the program's config map in place. Pins need \
        bpffs at /sys/fs/bpf: where none is mounted, load mounts it and says so.
        """
    )

    @OptionGroup var instance: InstanceOptions

    @OptionGroup var policyOptions: PolicyOptions

    @Option(help: ArgumentHelp(
        "Where the XDP program runs: native (in the driver), generic (after the kernel built an skb), or auto.",
        discussion: "auto takes generic on veth (native XDP there copies every frame and cannot send a SYN cookie "
            + "back) and elsewhere tries native, falling back to generic and saying so on stderr; the mode is "
            + "recorded for status and the exporter. A running program keeps its mode."))
    var xdpMode: XDPModeChoice = .auto

    @Flag(help: "Replace an XDP program on the interface that is not Gatewarden's.")
    var force = false

    @Flag(help: ArgumentHelp("Verify and swap in the XDP program even when the one running is this binary's.",
                             discussion: "Without it, loading into a program this binary attached only rewrites its limits, ports and lists: no verifier run, no swap."))
    var reloadProgram = false

    @OptionGroup var lock: ChangeLockOptions

    func run() throws {
        let source = try policyOptions.source()
        let policy = try source.policy()
        try lock.holding(instance, command: "load") {
            let deployment = try Deployment(namespace: instance.namespace(), interface: instance.interface)
            let outcome = try deployment.install(policy: policy, source: source, mode: xdpMode, force: force,
                                                 reloadProgram: reloadProgram)
            print(outcome)
        }
    }
}
