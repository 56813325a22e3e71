import GatewardenCore
import GatewardenPolicy
import Testing

@Suite("Enforce settings")
struct EnforceSettingsTests {
    @Test("the seed's defaults are consistent")
    func seedDefaults() {
        let settings = EnforceSettings.seedDefaults
        #expect(settings.interval == .seconds(10))
        #expect(settings.violations == 5)
        #expect(settings.windowIntervals == 6)
        #expect(settings.banFor == .seconds(1800))
        #expect(settings.maxBan == .seconds(604_800))
        #expect(settings.history == .seconds(2_592_000))
        #expect(settings.maxNewBansPerInterval == 1000)
        #expect(settings.problems.isEmpty)
    }

    @Test("a violation count the window cannot hold is reported with the keys")
    func unreachableViolations() {
        var settings = EnforceSettings.seedDefaults
        settings.violations = 7
        #expect(settings.problems == ["enforce.violations (7) can never be reached: enforce.window (1m) holds only 6 intervals of 10s"])
    }

    @Test("nonsense values are each reported")
    func nonsense() {
        let settings = EnforceSettings(interval: .zero, violations: 0, window: .seconds(5), banFor: .seconds(60),
                                       maxBan: .seconds(30), history: .seconds(-1), maxNewBansPerInterval: 0)
        let problems = settings.problems
        #expect(problems.contains("enforce.interval must be longer than zero"))
        #expect(problems.contains("enforce.violations must be at least 1"))
        #expect(problems.contains("enforce.max_ban (30s) is shorter than enforce.ban_for (1m)"))
        #expect(problems.contains("enforce.history must not be negative"))
        #expect(problems.contains("enforce.max_new_bans must be at least 1"))
        #expect(settings.windowIntervals == 1)
    }

    @Test("policy durations convert exactly")
    func policyDuration() throws {
        let parsed = try #require(PolicyDuration.parse("7d"))
        #expect(Duration(parsed) == .seconds(604_800))
    }
}
