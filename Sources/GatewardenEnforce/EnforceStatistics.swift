import Foundation
import GatewardenCore

/// What the enforce loop has done since it started, for `gatewarden_enforce_*` metrics. The loop
/// writes it to its state folder after every interval (`enforce-statistics.json`), so the exporter
/// reads the same figures whether the loop runs inside `serve` or alone as `gatewarden enforce`.
public struct EnforceStatistics: Codable, Sendable, Equatable {
    /// Bans created (applied, or recorded in observe mode), by origin.
    public var promotions: [String: UInt64] = [:]
    /// Promotions recorded in observe mode only ("would ban"), by origin.
    public var observedPromotions: [String: UInt64] = [:]
    public var expiries: UInt64 = 0
    /// Repairs by what was repaired: `table`, `xdp`, `bans_xdp`, `bans_nft`.
    public var repairs: [String: UInt64] = [:]
    /// Intervals in which more candidates came than `max_new_bans` allowed.
    public var capHits: UInt64 = 0
    /// Candidates left for a later interval by the cap.
    public var deferred: UInt64 = 0
    /// Offenders the violation trackers could not follow (they were full).
    public var untracked: UInt64 = 0
    /// Violators not banned for want of proof they are real hosts.
    public var unverified: UInt64 = 0
    public var intervals: UInt64 = 0
    public var failures: UInt64 = 0
    public var lastSuccessUnixSeconds: Double = 0
    public var lastDurationSeconds: Double = 0
    public var lastError: String?
    public var observing = false
    /// Each feed's figures, by origin (`tls`).
    public var feeds: [String: FeedFigures] = [:]
    /// When the loop (re)started, so a reader can tell counters that restarted.
    public var startedUnixSeconds: Double = 0

    public init() {}

    public static let fileName = "enforce-statistics.json"

    /// Writes atomically (a reader never sees half a file).
    public func write(toDirectory directory: String) throws {
        let data = try JSONEncoder().encode(self)
        try data.write(to: URL(fileURLWithPath: directory).appendingPathComponent(Self.fileName), options: .atomic)
    }

    public static func read(fromDirectory directory: String) -> EnforceStatistics? {
        guard let data = FileManager.default.contents(atPath: "\(directory)/\(fileName)") else { return nil }
        return try? JSONDecoder().decode(EnforceStatistics.self, from: data)
    }
}
