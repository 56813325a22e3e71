import CGatewardenABI
import GatewardenKernel

/// One interface's Gatewarden XDP state, read from its pins in the host's bpffs.
///
/// Readers open the pins afresh for every read, so a reload (which reuses the maps) or an
/// unload (which removes them) is seen at once, and the exporter holds nothing open.
///
///     let instance = XDPInstance(layout: PinLayout(namespace: lab, interface: "veth0"))
///     let drops = try instance.maps().packets(action: "drop", reason: "rate_ip")
public struct XDPInstance: Sendable {
    public let layout: PinLayout

    public init(layout: PinLayout) {
        self.layout = layout
    }

    public var link: XDPLink { XDPLink(pinPath: layout.link) }

    public func maps() throws -> XDPMaps {
        try XDPMaps(layout: layout)
    }

    /// The mode recorded at attach.
    public func mode() throws -> XDPMode? {
        try maps().loaderInfo().flatMap { XDPMode(abiValue: $0.xdp_mode) }
    }
}
