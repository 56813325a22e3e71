import CGatewardenABI

extension XDPLimits {
    /// What the XDP program's SYN cookie SYN-ACK offers: the same MSS, window scale and options as the
    /// ruleset's `synproxy` statement, whose check of the returning ACK must accept the cookie and
    /// restore the client's options from it. `load` fills it from the interface and the server's TCP
    /// settings (`HandshakeOptions`), in enforce mode only.
    ///
    ///     var limits = policy.xdpLimits
    ///     limits.synCookies = .init(ipv4MSS: 1460, ipv6MSS: 1440, windowScale: 7,
    ///                               timestamps: true, selectiveAcknowledgements: true,
    ///                               interfaceMAC: [0x02, 0, 0, 0, 0, 0x01])
    public struct SynCookies: Sendable, Equatable {
        public var ipv4MSS: UInt16
        public var ipv6MSS: UInt16
        /// nil when the server does not scale windows: the SYN-ACK offers no window scale.
        public var windowScale: UInt8?
        public var timestamps: Bool
        public var selectiveAcknowledgements: Bool
        /// The interface's own Ethernet address: only a SYN sent to it is answered.
        public var interfaceMAC: [UInt8]

        public init(ipv4MSS: UInt16, ipv6MSS: UInt16, windowScale: UInt8?, timestamps: Bool, selectiveAcknowledgements: Bool,
                    interfaceMAC: [UInt8]) {
            self.ipv4MSS = ipv4MSS
            self.ipv6MSS = ipv6MSS
            self.windowScale = windowScale.map { min($0, 14) }
            self.timestamps = timestamps
            self.selectiveAcknowledgements = selectiveAcknowledgements
            self.interfaceMAC = Array(interfaceMAC.prefix(6)) + [UInt8](repeating: 0, count: max(0, 6 - interfaceMAC.count))
        }

        /// The cookie fields of a config map value, or nil when cookies are off.
        init?(configuration config: gw_config) {
            let flags = UInt32(config.syncookie_flags)
            guard flags & UInt32(GW_SYNCOOKIE_ENABLED) != 0 else { return nil }
            self.init(ipv4MSS: config.syncookie_mss_ipv4, ipv6MSS: config.syncookie_mss_ipv6,
                      windowScale: flags & UInt32(GW_SYNCOOKIE_WSCALE) != 0 ? config.syncookie_wscale : nil,
                      timestamps: flags & UInt32(GW_SYNCOOKIE_TIMESTAMPS) != 0,
                      selectiveAcknowledgements: flags & UInt32(GW_SYNCOOKIE_SACK) != 0,
                      interfaceMAC: withUnsafeBytes(of: config.syncookie_mac) { Array($0) })
        }

        /// Sets the cookie fields of a config map value (cookies on).
        func write(into config: inout gw_config) {
            var flags = UInt32(GW_SYNCOOKIE_ENABLED)
            if windowScale != nil { flags |= UInt32(GW_SYNCOOKIE_WSCALE) }
            if timestamps { flags |= UInt32(GW_SYNCOOKIE_TIMESTAMPS) }
            if selectiveAcknowledgements { flags |= UInt32(GW_SYNCOOKIE_SACK) }
            config.syncookie_mss_ipv4 = ipv4MSS
            config.syncookie_mss_ipv6 = ipv6MSS
            config.syncookie_wscale = windowScale ?? 0
            config.syncookie_flags = UInt8(flags)
            let mac = interfaceMAC
            config.syncookie_mac = (mac[0], mac[1], mac[2], mac[3], mac[4], mac[5])
        }
    }
}
