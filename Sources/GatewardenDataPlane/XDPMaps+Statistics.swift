import CGatewardenABI
import CLibBPF
import GatewardenCore
import GatewardenKernel
#if canImport(Glibc)
import Glibc
#endif

/// The per-CPU counters of every verdict, by action and reason.
extension XDPMaps {
    /// A counter of the statistics array with its action and reason names.
    public struct Statistic: Sendable, Equatable {
        public var action: String
        public var reason: String
        public var packets: UInt64
        public var bytes: UInt64
    }

    /// The action each reason comes with (see `enum gw_reason`): the other pairings never happen,
    /// so they are neither read nor exported.
    public static let dropReasons: Set<String> = ["blocklist", "rate_ip", "rate_subnet"]
    /// The reasons observe mode counts as `would_drop` instead of dropping: the rate limits.
    /// Bans (`blocklist`) drop in both modes, so there is no `would_drop` blocklist counter.
    public static let wouldDropReasons: Set<String> = ["rate_ip", "rate_subnet"]

    /// Whether the program ever counts `reason` under `action`. A SYN answered with a cookie
    /// (`syncookie`) is always one under every limit.
    public static func isPossible(action: String, reason: String) -> Bool {
        switch action {
        case "drop": return dropReasons.contains(reason)
        case "would_drop": return wouldDropReasons.contains(reason)
        case "syncookie": return reason == "within_limit"
        default: return !dropReasons.contains(reason)
        }
    }

    /// Every possible (action, reason) counter, summed over CPUs.
    public func readStatistics() throws -> [Statistic] {
        var result: [Statistic] = []
        for action in Self.actionNames.indices {
            for reason in Self.reasonNames.indices
            where Self.isPossible(action: Self.actionNames[action], reason: Self.reasonNames[reason]) {
                let index = UInt32(action * Self.reasonNames.count + reason)
                let perCPU = try statistics.perCPUValues(at: index, as: gw_counter.self) ?? []
                result.append(Statistic(
                    action: Self.actionNames[action], reason: Self.reasonNames[reason],
                    packets: perCPU.reduce(0) { $0 &+ $1.packets },
                    bytes: perCPU.reduce(0) { $0 &+ $1.bytes }))
            }
        }
        return result
    }

    /// Packets counted for one (action, reason).
    public func packets(action: String, reason: String) throws -> UInt64 {
        try readStatistics().first { $0.action == action && $0.reason == reason }?.packets ?? 0
    }
}
