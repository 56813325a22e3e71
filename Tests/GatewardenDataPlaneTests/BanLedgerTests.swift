import Testing
import GatewardenCore
import GatewardenDataPlane

/// Who keeps which ban: the ledger a blocklist change edits, without a kernel.
@Suite("Ban ledger")
struct BanLedgerTests {
    let now: UInt64 = 1_000_000_000_000
    let prefix = try! AddressPrefix("198.51.100.0/24")

    @Test("a policy ban has no expiry and goes with the policy entry")
    func policyBan() {
        var ledger = BanLedger(entries: [:], now: now)
        ledger.replacePolicyBans(with: [prefix])
        #expect(ledger.bans[prefix]?.expiry == 0)
        #expect(ledger.bans[prefix]?.origins == [.policy])
        let written = ledger.changes(from: [:]).write
        ledger.replacePolicyBans(with: [])
        #expect(ledger.bans.isEmpty)
        let entries = Dictionary(uniqueKeysWithValues: written)
        #expect(ledger.changes(from: entries).delete == [prefix], "the entry is deleted from the map")
    }

    @Test("a permanent manual ban stays permanent whatever the policy lists")
    func permanentManualBan() {
        var ledger = BanLedger(entries: [:], now: now)
        ledger.hold(prefix, for: .manual, duration: nil)
        ledger.replacePolicyBans(with: [prefix])
        ledger.replacePolicyBans(with: [])
        #expect(ledger.bans[prefix]?.origins == [.manual])
        #expect(ledger.bans[prefix]?.expiry == 0)
    }

    @Test("a timed manual ban keeps its expiry under a policy ban, and the entry reads for good while the policy lists it")
    func timedManualBan() {
        var ledger = BanLedger(entries: [:], now: now)
        ledger.hold(prefix, for: .manual, duration: .seconds(60))
        let expiry = now + 60_000_000_000
        #expect(ledger.bans[prefix]?.expiry == expiry)
        ledger.replacePolicyBans(with: [prefix])
        #expect(ledger.bans[prefix]?.expiry == 0)
        // Written to the map and read back by a later change: the manual expiry is still its own.
        let entries = Dictionary(uniqueKeysWithValues: ledger.changes(from: [:]).write)
        var later = BanLedger(entries: entries, now: now + 1)
        later.replacePolicyBans(with: [])
        #expect(later.bans[prefix]?.expiry == expiry)
        #expect(later.bans[prefix]?.origins == [.manual])
    }

    @Test("expired holds are dropped on reading; an entry left without any is deleted by the next change")
    func expiry() {
        var ledger = BanLedger(entries: [:], now: now)
        ledger.hold(prefix, for: .manual, duration: .seconds(1))
        let other = try! AddressPrefix("2001:db8::/32")
        ledger.hold(other, for: .enforce, duration: .seconds(10))
        ledger.hold(other, for: .manual, duration: .seconds(1))
        let entries = Dictionary(uniqueKeysWithValues: ledger.changes(from: [:]).write)
        let later = BanLedger(entries: entries, now: now + 2_000_000_000)
        #expect(later.bans[prefix] == nil)
        #expect(later.bans[other]?.origins == [.enforce])
        let changes = later.changes(from: entries)
        #expect(changes.delete == [prefix])
        #expect(changes.write.map(\.0) == [other], "the entry of the lapsed manual hold is rewritten without it")
    }

    @Test("an unchanged ban is not rewritten; releasing an origin that holds nothing is refused")
    func minimalWrites() {
        var ledger = BanLedger(entries: [:], now: now)
        ledger.replacePolicyBans(with: [prefix])
        let entries = Dictionary(uniqueKeysWithValues: ledger.changes(from: [:]).write)
        var again = BanLedger(entries: entries, now: now + 5)
        again.replacePolicyBans(with: [prefix])
        #expect(again.changes(from: entries).write.isEmpty && again.changes(from: entries).delete.isEmpty)
        let released = again.release(prefix, for: .manual)
        #expect(!released)
        #expect(again.bans[prefix] != nil)
    }

    @Test("an absurd duration saturates instead of trapping")
    func saturation() {
        var ledger = BanLedger(entries: [:], now: UInt64.max - 10)
        ledger.hold(prefix, for: .manual, duration: .seconds(Int64.max))
        #expect(ledger.bans[prefix]?.expiry == UInt64.max)
    }
}
