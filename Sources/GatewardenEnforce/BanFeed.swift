import Foundation
import GatewardenCore

/// A source of ban candidates outside the kernel's own drop state: the nginx TLS-session-reuse
/// log, and later others. The loop polls each once per interval and bans what it returns (in
/// observe mode, records it), with the same caps, allowlist and lengths as every other origin.
public protocol BanFeed: AnyObject {
    /// The origin its bans carry.
    var origin: BanOrigin { get }
    /// The prefixes to ban, found since the last poll.
    func poll(now: Date) throws -> [AddressPrefix]
}
