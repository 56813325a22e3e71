import Foundation
import GatewardenCore
@testable import GatewardenDataPlane
import Testing

/// What a ban sink decides to write, without a kernel: when an expiry counts as different, and how
/// bans fit an nftables interval set, which refuses overlapping elements.
@Suite("Ban sink planning")
struct BanSinkPlanningTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("expiries within 2 s, or 2% of the time left, are the same; for good differs from any time")
    func expiryComparison() {
        let hour = now.addingTimeInterval(3600)
        #expect(!XDPBanSink.differs(hour.addingTimeInterval(60), hour, now: now), "60 s of an hour is under 2%")
        #expect(XDPBanSink.differs(hour.addingTimeInterval(120), hour, now: now), "120 s of an hour is over 2%")
        let soon = now.addingTimeInterval(10)
        #expect(!XDPBanSink.differs(soon.addingTimeInterval(1.5), soon, now: now))
        #expect(XDPBanSink.differs(soon.addingTimeInterval(3), soon, now: now))
        #expect(XDPBanSink.differs(nil, hour, now: now) && XDPBanSink.differs(hour, nil, now: now))
        #expect(!XDPBanSink.differs(nil, nil, now: now))
    }

    @Test("a ban inside a wider one present is left out; a wider one replaces the narrower ones it covers")
    func intervalPlan() throws {
        let wide = try AddressPrefix("198.51.100.0/24"), inside = try AddressPrefix("198.51.100.7")
        let other = try AddressPrefix("203.0.113.9"), sixInside = try AddressPrefix("2001:db8::1")
        let covered = IntervalPlan(present: [wide], needed: [inside: nil])
        #expect(covered.additions.isEmpty && covered.removals.isEmpty)

        let replacing = IntervalPlan(present: [inside, other, sixInside], needed: [wide: nil])
        #expect(replacing.additions.map(\.0) == [wide])
        #expect(replacing.removals == [inside], "only what the /24 covers, never another network or family")

        // Widest first within one plan: the /32 needed beside its /24 is left to the /24.
        let both = IntervalPlan(present: [], needed: [inside: nil, wide: nil])
        #expect(both.additions.map(\.0) == [wide])
    }

    @Test("100,000 bans plan in linear time")
    func largePlan() throws {
        let needed = Dictionary(uniqueKeysWithValues: try (0..<100_000).map {
            (try AddressPrefix("10.\(($0 >> 16) & 255).\(($0 >> 8) & 255).\($0 & 255)"), Optional<Date>.none)
        })
        let started = ContinuousClock.now
        let plan = IntervalPlan(present: [try AddressPrefix("11.0.0.0/8")], needed: needed)
        #expect(plan.additions.count == 100_000)
        #expect(ContinuousClock.now - started < .seconds(30), "the quadratic plan took over ten minutes")
    }
}
