import CGatewardenABI
import GatewardenKernel

/// The `--xdp-mode` choices: a fixed mode, or `auto`, the interface's best mode.
public enum XDPModeChoice: String, CaseIterable, Sendable {
    case native, generic, auto

    /// The `gw_xdp_mode` value recorded as requested.
    public var abiValue: UInt32 {
        switch self {
        case .native: return GW_XDP_MODE_NATIVE.rawValue
        case .generic: return GW_XDP_MODE_GENERIC.rawValue
        case .auto: return GW_XDP_MODE_AUTO.rawValue
        }
    }

    public var fixedMode: XDPMode? {
        switch self {
        case .native: return .native
        case .generic: return .generic
        case .auto: return nil
        }
    }

    /// The mode a fresh attach tries first on an interface whose driver is `driver`. `auto` picks generic
    /// on veth: frames reach a veth as skbs its peer already built, and native XDP there copies each one
    /// lacking XDP headroom into a page and builds a new skb on XDP_PASS (an empty native program cost
    /// 12% of a SYN flood's rate here, an empty generic one 3%); and a native XDP_TX reaches the peer only
    /// when the peer runs NAPI, which the program cannot see. Everywhere else it tries native.
    public func firstMode(driver: String?) -> XDPMode {
        fixedMode ?? (driver == "veth" ? .generic : .native)
    }
}

extension XDPModeChoice {
    /// The choice a loader record names as requested (`gw_loader_info.requested_mode`).
    public init?(abiValue: UInt32) {
        guard let choice = Self.allCases.first(where: { $0.abiValue == abiValue }) else { return nil }
        self = choice
    }
}
