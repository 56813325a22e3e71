import GatewardenEnforce
import GatewardenPolicy
import Testing

@Suite("Ban schedule")
struct BanScheduleTests {
    static let thirtyMinutes = Duration.seconds(1800)
    static let week = Duration.seconds(7 * 86400)

    func schedule(fraction: Double) -> BanSchedule {
        BanSchedule(banFor: Self.thirtyMinutes, maxBan: Self.week, history: .seconds(30 * 86400),
                    randomFraction: { fraction })
    }

    @Test("each repeat offence doubles the ban")
    func doubling() {
        let schedule = schedule(fraction: 0)
        #expect(schedule.length(ofOffence: 1) == .seconds(1800))
        #expect(schedule.length(ofOffence: 2) == .seconds(3600))
        #expect(schedule.length(ofOffence: 3) == .seconds(7200))
        #expect(schedule.length(ofOffence: 8) == .seconds(1800 * 128))
    }

    @Test("lengths stop at max_ban")
    func cap() {
        let schedule = schedule(fraction: 0)
        // 30m * 2^8 = 128h is under 7d = 168h; 30m * 2^9 = 256h is over.
        #expect(schedule.length(ofOffence: 9) == .seconds(1800 * 256))
        #expect(schedule.length(ofOffence: 10) == Self.week)
        #expect(schedule.length(ofOffence: 11) == Self.week)
    }

    @Test("huge or nonsensical offence numbers neither overflow nor shorten", arguments: [64, 1000, Int.max, 0, -5, Int.min])
    func hugeOffence(offence: Int) {
        let schedule = schedule(fraction: 0.99)
        let length = schedule.length(ofOffence: offence)
        if offence >= 64 {
            #expect(length == Self.week)
        } else {
            #expect(length >= Self.thirtyMinutes && length <= Self.thirtyMinutes + Self.thirtyMinutes * 0.1)
        }
    }

    @Test("jitter adds at most 10% and never passes max_ban", arguments: [0.0, 0.5, 0.999_999, 1.0, 7.0, -3.0, .nan, .infinity])
    func jitterBounds(fraction: Double) {
        let schedule = schedule(fraction: fraction)
        for offence in 1...12 {
            let base = schedule.baseLength(ofOffence: offence)
            let length = schedule.length(ofOffence: offence)
            #expect(length >= base)
            #expect(length <= base + base * 0.1)
            #expect(length <= Self.week)
        }
    }

    @Test("jitter spreads lengths with the real random source")
    func jitterVaries() {
        let schedule = BanSchedule(banFor: Self.thirtyMinutes, maxBan: Self.week, history: .zero)
        let lengths = Set((0..<50).map { _ in schedule.length(ofOffence: 1) })
        #expect(lengths.count > 1)
        #expect(lengths.allSatisfy { $0 >= Self.thirtyMinutes && $0 <= Self.thirtyMinutes + Self.thirtyMinutes * 0.1 })
    }

    @Test("a half jitter is 5% of the base length")
    func jitterScale() {
        #expect(schedule(fraction: 0.5).length(ofOffence: 2) == .seconds(3600 + 180))
    }

    @Test("max_ban below ban_for caps even a first ban")
    func capBelowFirst() {
        let schedule = BanSchedule(banFor: .seconds(3600), maxBan: .seconds(600), history: .zero, randomFraction: { 0.9 })
        #expect(schedule.length(ofOffence: 1) == .seconds(600))
    }

    @Test("the settings' schedule uses ban_for, max_ban and history")
    func fromSettings() {
        let schedule = BanSchedule(.seedDefaults, randomFraction: { 0 })
        #expect(schedule.length(ofOffence: 1) == .seconds(1800))
        #expect(schedule.history == .seconds(30 * 86400))
        #expect(schedule.maxBan == Self.week)
    }
}
