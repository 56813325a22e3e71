import ArgumentParser
import CGatewardenABI
import GatewardenKernel

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

/// The `--xdp-mode` choices: a fixed mode, or native with a generic fallback.
enum XDPModeChoice: String, CaseIterable, ExpressibleByArgument {
    case native, generic, auto

    /// The `gw_xdp_mode` value recorded as requested.
    var abiValue: UInt32 {
        switch self {
        case .native: return GW_XDP_MODE_NATIVE.rawValue
        case .generic: return GW_XDP_MODE_GENERIC.rawValue
        case .auto: return GW_XDP_MODE_AUTO.rawValue
        }
    }

    var fixedMode: XDPMode? {
        switch self {
        case .native: return .native
        case .generic: return .generic
        case .auto: return nil
        }
    }
}
