import GatewardenDataPlane

/// The TCP options nftables' `synproxy` answers a SYN with. The SYN cookie's SYN-ACK is sent
/// before the server has seen the connection, so what it promises must match what the server's
/// own stack will do: a window scale other than the server's corrupts every window after the
/// handshake, and an MSS above the path's MTU leaves full-sized segments undeliverable.
///
///     let options = HandshakeOptions(mtu: 1500, tcpRmemMax: 6_291_456, rmemMax: 212_992,
///                                    timestamps: true, selectiveAcknowledgements: true)
///     options.windowScale   // 7, as the kernel computes it for its own SYN-ACKs
public struct HandshakeOptions: Sendable, Equatable {
    public var ipv4MSS: Int
    public var ipv6MSS: Int
    /// nil when the server does not scale windows (`net.ipv4.tcp_window_scaling=0`).
    public var windowScale: Int?
    public var timestamps: Bool
    public var selectiveAcknowledgements: Bool

    /// For an interface MTU and the server's TCP settings (`net.ipv4.tcp_rmem`'s maximum,
    /// `net.core.rmem_max`, `tcp_window_scaling`, `tcp_timestamps`, `tcp_sack`). A listener that sets
    /// its own receive buffer (nginx `listen ... rcvbuf=`) scales by that instead: leave it unset.
    public init(mtu: Int, tcpRmemMax: Int, rmemMax: Int, windowScaling: Bool = true, timestamps: Bool,
                selectiveAcknowledgements: Bool) {
        // IPv4 + TCP headers take 40 bytes, IPv6 + TCP 60.
        ipv4MSS = max(536, mtu - 40)
        ipv6MSS = max(1220, mtu - 60)
        // tcp_select_initial_window(): the scale that fits the largest receive buffer in 16 bits.
        let space = max(tcpRmemMax, rmemMax, 1)
        windowScale = windowScaling ? min(14, max(0, (Int.bitWidth - 1 - space.leadingZeroBitCount) - 15)) : nil
        self.timestamps = timestamps
        self.selectiveAcknowledgements = selectiveAcknowledgements
    }

    /// Linux's defaults for `net.ipv4.tcp_rmem`'s maximum and `net.core.rmem_max`.
    public static let defaultTCPRmemMax = 6_291_456
    public static let defaultRmemMax = 212_992

    /// A 1500-byte MTU and Linux's defaults: what `render` shows without an interface to read.
    public static let linuxDefault = HandshakeOptions(mtu: 1500, tcpRmemMax: defaultTCPRmemMax, rmemMax: defaultRmemMax,
                                                      timestamps: true, selectiveAcknowledgements: true)

    /// The same promises for the XDP program's SYN cookie SYN-ACK (the statement's, word for word), from
    /// the interface whose Ethernet address is `interfaceMAC`.
    public func xdpSynCookies(interfaceMAC: [UInt8]) -> XDPLimits.SynCookies {
        XDPLimits.SynCookies(ipv4MSS: UInt16(clamping: ipv4MSS), ipv6MSS: UInt16(clamping: ipv6MSS),
                             windowScale: windowScale.map { UInt8(clamping: $0) }, timestamps: timestamps,
                             selectiveAcknowledgements: selectiveAcknowledgements, interfaceMAC: interfaceMAC)
    }

    /// The `synproxy` statement's options for one address family.
    func statement(ipv6: Bool) -> String {
        var words = ["synproxy mss \(ipv6 ? ipv6MSS : ipv4MSS)"]
        if let windowScale { words.append("wscale \(windowScale)") }
        if timestamps { words.append("timestamp") }
        if selectiveAcknowledgements { words.append("sack-perm") }
        return words.joined(separator: " ")
    }
}
