import CGatewardenABI
import GatewardenKernel

/// The `--xdp-mode` choices: a fixed mode, or native with a generic fallback.
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
}

extension XDPModeChoice {
    /// The choice a loader record names as requested (`gw_loader_info.requested_mode`).
    public init?(abiValue: UInt32) {
        guard let choice = Self.allCases.first(where: { $0.abiValue == abiValue }) else { return nil }
        self = choice
    }
}
