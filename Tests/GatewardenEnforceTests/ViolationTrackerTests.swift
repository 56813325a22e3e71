import GatewardenCore
import GatewardenEnforce
import GatewardenPolicy
import Testing

@Suite("Violation tracker")
struct ViolationTrackerTests {
    static let abuser = PrefixKey(try! AddressPrefix("198.51.100.7/32"))
    static let other = PrefixKey(try! AddressPrefix("198.51.100.8/32"))

    /// The n-th of a run of distinct IPv4 /32s in 10.0.0.0/8.
    static func host(_ index: Int) -> PrefixKey {
        PrefixKey(high: 0, low: 0xffff_0a00_0000 | UInt64(index & 0xff_ffff), mappedLength: 128)
    }

    @Test("promotes at exactly `violations` intervals within the window, not before")
    func promotesAtThreshold() {
        var tracker = ViolationTracker(violations: 5, windowIntervals: 6)
        for interval in 1...4 {
            #expect(tracker.record(interval: UInt64(interval), offenders: [Self.abuser]).promoted.isEmpty)
        }
        #expect(tracker.record(interval: 5, offenders: [Self.abuser, Self.other]).promoted == [Self.abuser])
    }

    @Test("gaps inside the window still count; the same interval counts once")
    func gapsAndRepeats() {
        var tracker = ViolationTracker(violations: 3, windowIntervals: 6)
        #expect(tracker.record(interval: 10, offenders: [Self.abuser, Self.abuser]).promoted.isEmpty)
        // Recorded again in a second batch of the same interval: still one interval.
        #expect(tracker.record(interval: 10, offenders: [Self.abuser]).promoted.isEmpty)
        #expect(tracker.record(interval: 13, offenders: [Self.abuser]).promoted.isEmpty)
        #expect(tracker.record(interval: 15, offenders: [Self.abuser]).promoted == [Self.abuser])
    }

    @Test("drops spread wider than the window never promote")
    func spreadTooThin() {
        var tracker = ViolationTracker(violations: 3, windowIntervals: 6)
        // Every third interval: at most two of them in any six consecutive intervals.
        for interval in stride(from: 3, through: 60, by: 3) {
            #expect(tracker.record(interval: UInt64(interval), offenders: [Self.abuser]).promoted.isEmpty)
        }
        #expect(tracker.trackedCount == 1)
    }

    @Test("forgets a prefix once its last drop has left the window")
    func forgets() {
        var tracker = ViolationTracker(violations: 3, windowIntervals: 6)
        _ = tracker.record(interval: 1, offenders: [Self.abuser])
        _ = tracker.record(interval: 2, offenders: [Self.abuser])
        _ = tracker.record(interval: 6, offenders: [Self.other])
        #expect(tracker.trackedCount == 2)
        _ = tracker.record(interval: 8, offenders: [Self.other])
        #expect(tracker.trackedCount == 1, "interval 2 is outside the 6 intervals ending at 8")
        // Back after the window: it starts from scratch.
        #expect(tracker.record(interval: 9, offenders: [Self.abuser]).promoted.isEmpty)
        #expect(tracker.record(interval: 10, offenders: [Self.abuser]).promoted.isEmpty)
        #expect(tracker.record(interval: 11, offenders: [Self.abuser]).promoted == [Self.abuser])
    }

    @Test("one violation is enough when the policy says so")
    func singleViolation() {
        var tracker = ViolationTracker(violations: 1, windowIntervals: 1)
        #expect(tracker.record(interval: 1, offenders: [Self.abuser]).promoted == [Self.abuser])
        #expect(tracker.record(interval: 2, offenders: [Self.abuser]).promoted == [Self.abuser])
    }

    @Test("a flood of 100,000 one-off sources per interval promotes no one and stays within capacity")
    func spoofedFlood() {
        var tracker = ViolationTracker(violations: 5, windowIntervals: 6)
        var untracked = 0
        for interval in 1...8 {
            let flood = (0..<100_000).lazy.map { Self.host(interval * 100_000 + $0) }
            let report = tracker.record(interval: UInt64(interval), offenders: flood)
            #expect(report.promoted.isEmpty)
            #expect(tracker.trackedCount <= ViolationTracker.defaultCapacity)
            untracked += report.untracked
        }
        // Six intervals of 100k is 600k; only 262,144 fit.
        #expect(untracked > 0)
        #expect(tracker.untrackedTotal == UInt64(untracked))
    }

    @Test("when full, new keys are untracked but tracked ones keep counting")
    func fullTracker() {
        var tracker = ViolationTracker(violations: 3, windowIntervals: 10, capacity: 100)
        _ = tracker.record(interval: 1, offenders: [Self.abuser])
        for interval in 2...3 {
            let flood = (0..<500).map { Self.host(interval * 1000 + $0) }
            let report = tracker.record(interval: UInt64(interval), offenders: flood + [Self.abuser])
            #expect(tracker.trackedCount == 100)
            if interval == 3 { #expect(report.promoted == [Self.abuser]) }
        }
        #expect(tracker.untrackedTotal == 500 - 99 + 500)
        // The flood leaves the window; room again.
        _ = tracker.record(interval: 14, offenders: [Self.other])
        #expect(tracker.trackedCount == 1)
    }

    @Test("sources and subnets are tracked independently")
    func sourcesVersusSubnets() throws {
        var sources = ViolationTracker(violations: 2, windowIntervals: 3)
        var subnets = ViolationTracker(violations: 2, windowIntervals: 3)
        let subnet = try AddressPrefix("198.51.100.0/24")
        let source = try AddressPrefix("198.51.100.7/32")
        #expect(sources.record(interval: 1, offenders: [source]).promoted.isEmpty)
        #expect(subnets.record(interval: 2, offenders: [subnet]).promoted.isEmpty)
        #expect(sources.record(interval: 3, offenders: [source]).promoted == [source])
        #expect(subnets.record(interval: 3, offenders: [subnet]).promoted == [subnet])
        // Same address, different length: different keys.
        #expect(PrefixKey(subnet) != PrefixKey(try AddressPrefix("198.51.100.0/32")))
    }

    @Test("keys round-trip to their prefixes, IPv4 and IPv6", arguments: [
        "198.51.100.7/32", "203.0.113.0/24", "0.0.0.0/0", "2001:db8::/32", "2001:db8:1:2::/64",
        "::ffff:0:0/96", "::/0", "2001:db8::1/128",
    ])
    func keyRoundTrip(text: String) throws {
        let prefix = try AddressPrefix(text)
        let key = PrefixKey(prefix)
        #expect(key.prefix == prefix)
        #expect(key.description == prefix.description)
        #expect(key.mappedLength == UInt8(prefix.mappedLength))
    }

    @Test("keys clear host bits and clamp the length, so raw map words cannot make a bad prefix")
    func keyNormalises() {
        let key = PrefixKey(high: 0x2001_0db8_ffff_ffff, low: .max, mappedLength: 40)
        #expect(key.description == "2001:db8:ff00::/40")
        #expect(PrefixKey(high: 1, low: 1, mappedLength: 999).mappedLength == 128)
        #expect(PrefixKey(high: 1, low: 1, mappedLength: -3).description == "::/0")
    }
}
