import CGatewardenABI
import GatewardenCore
import GatewardenKernel

/// The XDP program's limits, as a policy states them: packets per second and burst, per
/// source address and per source subnet, the subnet sizes and the protected ports.
///
///     var limits = XDPLimits.default
///     limits.source = .init(packetsPerSecond: 100, burst: 200)
///     try maps.apply(limits)
public struct XDPLimits: Sendable, Equatable {
    /// A GCRA limit: a sustained rate and how many packets may arrive at once.
    public struct Rate: Sendable, Equatable, CustomStringConvertible {
        /// `packets` per `periodSeconds`; 0 packets is no limit.
        public var packets: UInt64
        public var periodSeconds: UInt64
        public var burst: UInt64

        public init(packets: UInt64, perSeconds periodSeconds: UInt64, burst: UInt64) {
            self.packets = packets
            self.periodSeconds = max(periodSeconds, 1)
            self.burst = burst
        }

        public init(packetsPerSecond: UInt64, burst: UInt64) {
            self.init(packets: packetsPerSecond, perSeconds: 1, burst: burst)
        }

        /// Nanoseconds between packets at the sustained rate; 0 (no limit) for a rate of 0.
        var intervalNanoseconds: UInt64 { packets == 0 ? 0 : periodSeconds * 1_000_000_000 / packets }
        /// How far ahead of now the theoretical arrival time may run: `burst` intervals (past
        /// `UInt64.max`, forever: a policy refuses such a burst, this keeps any other caller from trapping).
        var toleranceNanoseconds: UInt64 {
            let (tolerance, overflow) = intervalNanoseconds.multipliedReportingOverflow(by: burst)
            return overflow ? .max : tolerance
        }

        public var description: String {
            let unit = [1: "s", 60: "min", 3600: "h"][Int(periodSeconds)] ?? "\(periodSeconds)s"
            return "\(packets)/\(unit) burst \(burst)"
        }
    }

    public var source: Rate
    public var subnet: Rate
    public var ipv4SubnetPrefix: Int
    public var ipv6SubnetPrefix: Int
    public var protectedPorts: [UInt16]
    /// Observe mode: packets over a rate are counted as `would_drop` and passed (bans still drop).
    public var observe: Bool
    /// SYN cookies at XDP: what the program's SYN-ACK offers; nil leaves every SYN to nftables' synproxy.
    public var synCookies: SynCookies?

    public init(source: Rate, subnet: Rate, ipv4SubnetPrefix: Int, ipv6SubnetPrefix: Int, protectedPorts: [UInt16],
                observe: Bool = false, synCookies: SynCookies? = nil) {
        self.source = source
        self.subnet = subnet
        self.ipv4SubnetPrefix = ipv4SubnetPrefix
        self.ipv6SubnetPrefix = ipv6SubnetPrefix
        self.protectedPorts = protectedPorts
        self.observe = observe
        self.synCookies = synCookies
    }

    /// Limits for kernel tests and the benchmark: 100 packets/s burst 200 per source and 500/s burst
    /// 1000 per /24 (per /64 for IPv6) on HTTP and HTTPS. The product's defaults are the policy's
    /// (`Policy.builtInDefault`).
    public static let `default` = XDPLimits(
        source: Rate(packetsPerSecond: 100, burst: 200),
        subnet: Rate(packetsPerSecond: 500, burst: 1000),
        ipv4SubnetPrefix: 24, ipv6SubnetPrefix: 64, protectedPorts: [80, 443])

    /// The config map's value for these limits (what `XDPMaps.apply` writes).
    public func configuration(allowlistEntries: UInt32, blocklistEntries: UInt32, listGeneration: UInt32) -> gw_config {
        var config = gw_config()
        config.source_interval_ns = source.intervalNanoseconds
        config.source_tolerance_ns = source.toleranceNanoseconds
        config.subnet_interval_ns = subnet.intervalNanoseconds
        config.subnet_tolerance_ns = subnet.toleranceNanoseconds
        config.ipv4_subnet_prefix = UInt32(ipv4SubnetPrefix)
        config.ipv6_subnet_prefix = UInt32(ipv6SubnetPrefix)
        config.allowlist_entries = allowlistEntries
        config.blocklist_entries = blocklistEntries
        config.list_generation = listGeneration
        config.sighting_window = sightingWindow
        config.observe = observe ? 1 : 0
        // Cookies answer only in enforce mode: observing, every SYN goes to conntrack as without Gatewarden.
        if let synCookies, !observe { synCookies.write(into: &config) }
        return config
    }

    /// The longest emission interval in the program's sighting units (see gw_sightings), rounded up:
    /// a key whose packets are further apart than that conforms to every limit without a bucket.
    var sightingWindow: UInt32 {
        let longest = max(source.intervalNanoseconds, subnet.intervalNanoseconds)
        let unit: UInt64 = 1 << GW_SIGHTING_UNIT_SHIFT
        return UInt32(clamping: (longest + unit - 1) / unit)
    }

    /// The limits a config map value holds, observe mode included (ports are kept in their own map).
    init(configuration config: gw_config, protectedPorts: [UInt16]) {
        func rate(_ interval: UInt64, _ tolerance: UInt64) -> Rate {
            guard interval > 0 else { return Rate(packetsPerSecond: 0, burst: 0) }
            // The shortest period in which the interval fits a whole number of times.
            let period: UInt64 = [1, 60, 3600].first { ($0 * 1_000_000_000) % interval == 0 } ?? 1
            return Rate(packets: period * 1_000_000_000 / interval, perSeconds: period, burst: tolerance / interval)
        }
        self.init(source: rate(config.source_interval_ns, config.source_tolerance_ns),
                  subnet: rate(config.subnet_interval_ns, config.subnet_tolerance_ns),
                  ipv4SubnetPrefix: Int(config.ipv4_subnet_prefix), ipv6SubnetPrefix: Int(config.ipv6_subnet_prefix),
                  protectedPorts: protectedPorts, observe: config.observe != 0,
                  synCookies: SynCookies(configuration: config))
    }
}
