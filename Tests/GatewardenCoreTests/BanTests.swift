import Foundation
import GatewardenCore
import Testing

/// The ban value every layer and the store share.
@Suite("Ban")
struct BanTests {
    @Test("a ban is active until it expires; one without expiry stays")
    func activity() throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let prefix = try AddressPrefix("203.0.113.0/24")
        let timed = Ban(prefix: prefix, origin: .tls, created: now, expires: now.addingTimeInterval(60))
        #expect(timed.isActive(at: now.addingTimeInterval(59)))
        #expect(!timed.isActive(at: now.addingTimeInterval(60)))
        let forGood = Ban(prefix: prefix, origin: .manual, created: now, expires: nil)
        #expect(forGood.isActive(at: now.addingTimeInterval(1e9)))
    }

    @Test("origins print as the names operators and metrics use", arguments: BanOrigin.allCases)
    func originNames(origin: BanOrigin) {
        #expect(BanOrigin(rawValue: origin.description) == origin)
        #expect(["rate_source", "rate_subnet", "escalation", "tls", "manual", "policy"].contains(origin.description))
    }
}
