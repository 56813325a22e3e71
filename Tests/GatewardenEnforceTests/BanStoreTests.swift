#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GatewardenCore
import GatewardenEnforce
import GatewardenPolicy
import GRDB
import Testing

/// A fresh directory under the temporary directory, removed when the test is done with it.
struct ScratchDirectory: ~Copyable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("gatewarden-store-\(getpid())-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    var storeFile: String { path + "/" + BanStore.fileName }
}

@Suite("Ban store")
struct BanStoreTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)
    static let noJitter = BanSchedule(banFor: .seconds(1800), maxBan: .seconds(7 * 86400), history: .seconds(30 * 86400),
                                      randomFraction: { 0 })

    static func prefix(_ text: String) -> AddressPrefix { try! AddressPrefix(text) }

    static let abuser = BanCandidate(prefix: prefix("198.51.100.7/32"), origin: .rateSource)
    static let subnet = BanCandidate(prefix: prefix("2001:db8:bad::/48"), origin: .rateSubnet)

    @Test("a ban read back equals the ban written, every origin, both families, for good or timed")
    func roundTrip() throws {
        let store = try BanStore.inMemory()
        let bans = BanOrigin.allCases.enumerated().map { index, origin in
            Ban(prefix: Self.prefix(index.isMultiple(of: 2) ? "203.0.113.\(index)/32" : "2001:db8::\(index)/128"),
                origin: origin, created: Self.start, expires: index == 0 ? nil : Self.start.addingTimeInterval(Double(index) * 60.5),
                offence: index + 1)
        }
        try store.add(bans)
        #expect(Set(try store.activeBans(at: Self.start)) == Set(bans))
        // Sub-microsecond dates come back as `add` returned them.
        let odd = Ban(prefix: Self.prefix("192.0.2.0/24"), origin: .manual, created: Date(), expires: Date().addingTimeInterval(0.123_456_789))
        let stored = try store.add(odd)
        #expect(try store.allEntries().map(\.ban).contains(stored))
        #expect(abs(stored.created.timeIntervalSince(odd.created)) < 1e-6)
    }

    @Test("bans survive closing and reopening the file")
    func persistence() throws {
        let scratch = try ScratchDirectory()
        let directory = scratch.path + "/state"
        let ban = Ban(prefix: Self.prefix("203.0.113.0/24"), origin: .tls, created: Self.start,
                      expires: Self.start.addingTimeInterval(3600), offence: 2)
        do {
            let store = try BanStore(directory: directory)
            try store.add(ban)
            _ = try store.promote([Self.abuser], now: Self.start, schedule: Self.noJitter, applied: true)
        }
        let reopened = try BanStore(directory: directory)
        let active = try reopened.activeBans(at: Self.start.addingTimeInterval(1))
        #expect(Set(active.map(\.prefix)) == [ban.prefix, Self.abuser.prefix])
        #expect(active.contains(ban))
        #expect(try reopened.offences(of: Self.abuser.prefix) == 1)
    }

    @Test("the directory is created 0700 and the file 0600, with SQLite's side files")
    func permissions() throws {
        let scratch = try ScratchDirectory()
        let directory = scratch.path + "/var/lib/gatewarden"
        let previous = umask(0)
        defer { umask(previous) }
        let store = try BanStore(directory: directory)
        try store.add(Ban(prefix: Self.prefix("203.0.113.9/32"), origin: .manual, created: Self.start, expires: nil))
        func mode(_ path: String) throws -> Int {
            try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        }
        #expect(try mode(directory) == 0o700)
        #expect(try mode(scratch.storeFile.replacingOccurrences(of: scratch.path, with: directory)) == 0o600)
        #expect(try mode(directory + "/gatewarden.sqlite-wal") == 0o600)
        #expect(store.path == directory + "/gatewarden.sqlite")
    }

    @Test("an existing file with loose permissions is tightened to 0600")
    func tightens() throws {
        let scratch = try ScratchDirectory()
        #expect(FileManager.default.createFile(atPath: scratch.storeFile, contents: nil, attributes: [.posixPermissions: 0o644]))
        _ = try BanStore(directory: scratch.path)
        #expect(try FileManager.default.attributesOfItem(atPath: scratch.storeFile)[.posixPermissions] as? Int == 0o600)
    }

    @Test("a file that is not a database is refused with its path and what is wrong, and left alone")
    func refusesGarbage() throws {
        let scratch = try ScratchDirectory()
        let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try garbage.write(to: URL(fileURLWithPath: scratch.storeFile))
        let error = try #require(throws: BanStore.Error.self) { try BanStore(directory: scratch.path) }
        #expect(error.path == scratch.storeFile)
        #expect(error.description.hasPrefix(scratch.storeFile + ": "))
        #expect(error.problem.contains("not an SQLite database"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: scratch.storeFile)) == garbage)
    }

    @Test("a store whose pages were damaged is refused as corrupt")
    func refusesCorruptPages() throws {
        let scratch = try ScratchDirectory()
        do {
            let store = try BanStore(directory: scratch.path)
            let bans = (0..<2000).map {
                Ban(prefix: Self.prefix("10.0.\($0 / 256).\($0 % 256)/32"), origin: .manual, created: Self.start, expires: nil)
            }
            try store.add(bans)
        }
        // Checkpoint the WAL into the main file, then scribble over pages past the header.
        let checkpoint = try DatabaseQueue(path: scratch.storeFile)
        try checkpoint.writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE") }
        try checkpoint.close()
        let handle = try #require(FileHandle(forUpdatingAtPath: scratch.storeFile))
        try handle.seek(toOffset: 4096 * 2)
        try handle.write(contentsOf: Data(repeating: 0xa5, count: 4096 * 3))
        try handle.close()
        let error = try #require(throws: BanStore.Error.self) { try BanStore(directory: scratch.path) }
        #expect(error.path == scratch.storeFile)
        #expect(error.problem.contains("corrupt") || error.problem.contains("not an SQLite database"))
    }

    @Test("another program's SQLite database is refused")
    func refusesForeign() throws {
        let scratch = try ScratchDirectory()
        let foreign = try DatabaseQueue(path: scratch.storeFile)
        try foreign.write { try $0.execute(sql: "CREATE TABLE customers (name TEXT)") }
        try foreign.close()
        let error = try #require(throws: BanStore.Error.self) { try BanStore(directory: scratch.path) }
        #expect(error.problem.contains("not a Gatewarden ban store"))
        #expect(error.problem.contains("customers"))
    }

    @Test("a store written by a newer Gatewarden is refused")
    func refusesNewer() throws {
        let scratch = try ScratchDirectory()
        _ = try BanStore(directory: scratch.path)
        let database = try DatabaseQueue(path: scratch.storeFile)
        try database.write { try $0.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v9: from the future')") }
        try database.close()
        let error = try #require(throws: BanStore.Error.self) { try BanStore(directory: scratch.path) }
        #expect(error.problem.contains("newer Gatewarden"))
        #expect(error.problem.contains("v9: from the future"))
    }

    @Test("a path that is not a directory is refused, naming it")
    func refusesFileAsDirectory() throws {
        let scratch = try ScratchDirectory()
        let file = scratch.path + "/plain"
        #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        let error = try #require(throws: BanStore.Error.self) { try BanStore(directory: file) }
        #expect(error.description == "\(file): is not a directory")
    }

    @Test("a row edited into nonsense is an error naming it, not a crash")
    func badRow() throws {
        let scratch = try ScratchDirectory()
        _ = try BanStore(directory: scratch.path)
        let database = try DatabaseQueue(path: scratch.storeFile)
        try database.write {
            try $0.execute(sql: "INSERT INTO bans VALUES ('999.1.2.3/32', 'manual', 0, NULL, 1, 1)")
        }
        try database.close()
        let store = try BanStore(directory: scratch.path)
        let error = try #require(throws: BanStore.Error.self) { try store.activeBans(at: Self.start) }
        #expect(error.problem.contains("'999.1.2.3/32'"))
    }

    @Test("promoting twice in a row bans once")
    func promoteTwice() throws {
        let store = try BanStore.inMemory()
        let first = try store.promote([Self.abuser, Self.subnet], now: Self.start, schedule: Self.noJitter, applied: true)
        #expect(first.bans.count == 2)
        #expect(first.bans[0] == Ban(prefix: Self.abuser.prefix, origin: .rateSource, created: Self.start,
                                     expires: Self.start.addingTimeInterval(1800), offence: 1))
        let second = try store.promote([Self.abuser, Self.subnet, Self.abuser], now: Self.start.addingTimeInterval(10),
                                       schedule: Self.noJitter, applied: true)
        #expect(second.bans.isEmpty)
        #expect(second.alreadyBanned == 3)
        #expect(try store.activeBans(at: Self.start).count == 2)
        #expect(try store.offences(of: Self.abuser.prefix) == 1)
        // Another origin for the same prefix is a ban of its own.
        let tls = try store.promote([BanCandidate(prefix: Self.abuser.prefix, origin: .tls)], now: Self.start,
                                    schedule: Self.noJitter, applied: true)
        #expect(tls.bans.count == 1)
    }

    @Test("the same candidate twice in one promotion bans once")
    func duplicateCandidates() throws {
        let store = try BanStore.inMemory()
        let promotion = try store.promote([Self.abuser, Self.abuser], now: Self.start, schedule: Self.noJitter, applied: true)
        #expect(promotion.bans.count == 1)
        #expect(promotion.alreadyBanned == 1)
    }

    @Test("the second offence after expiry gets twice the ban, the third four times")
    func escalation() throws {
        let store = try BanStore.inMemory()
        var now = Self.start
        var lengths: [TimeInterval] = []
        for expected in 1...3 {
            let promotion = try store.promote([Self.abuser], now: now, schedule: Self.noJitter, applied: true)
            let ban = try #require(promotion.bans.first)
            #expect(ban.offence == expected)
            let expires = try #require(ban.expires)
            lengths.append(expires.timeIntervalSince(now))
            now = expires.addingTimeInterval(60)
            #expect(try store.expire(at: now).map(\.ban) == [ban])
        }
        #expect(lengths == [1800, 3600, 7200])
    }

    @Test("an expired ban not yet collected does not stop a new one")
    func expiredButUncollected() throws {
        let store = try BanStore.inMemory()
        _ = try store.promote([Self.abuser], now: Self.start, schedule: Self.noJitter, applied: true)
        let later = Self.start.addingTimeInterval(1801)
        let promotion = try store.promote([Self.abuser], now: later, schedule: Self.noJitter, applied: true)
        #expect(promotion.bans.map(\.offence) == [2])
        #expect(try store.activeBans(at: later).map(\.expires) == [later.addingTimeInterval(3600)])
    }

    @Test("offences older than history no longer lengthen bans, and pruning forgets them")
    func historyPruning() throws {
        let store = try BanStore.inMemory()
        _ = try store.promote([Self.abuser], now: Self.start, schedule: Self.noJitter, applied: true)
        let monthLater = Self.start.addingTimeInterval(31 * 86400)
        _ = try store.expire(at: monthLater)
        let promotion = try store.promote([Self.abuser], now: monthLater, schedule: Self.noJitter, applied: true)
        #expect(promotion.bans.map(\.offence) == [1], "the first offence is outside the 30-day history")
        #expect(try store.offences(of: Self.abuser.prefix) == 2)
        #expect(try store.offences(of: Self.abuser.prefix, since: Self.start) == 1)
        #expect(try store.pruneHistory(olderThan: monthLater.addingTimeInterval(-30 * 86400)) == 1)
        #expect(try store.offences(of: Self.abuser.prefix) == 1)
    }

    @Test("expiry returns and deletes the bans whose time is up, and only those")
    func expiry() throws {
        let store = try BanStore.inMemory()
        let short = Ban(prefix: Self.prefix("203.0.113.1/32"), origin: .manual, created: Self.start, expires: Self.start.addingTimeInterval(60))
        let long = Ban(prefix: Self.prefix("203.0.113.2/32"), origin: .manual, created: Self.start, expires: Self.start.addingTimeInterval(600))
        let forever = Ban(prefix: Self.prefix("203.0.113.3/32"), origin: .policy, created: Self.start, expires: nil)
        try store.add([short, long, forever])
        #expect(try store.expire(at: Self.start.addingTimeInterval(59)).isEmpty)
        #expect(try store.expire(at: Self.start.addingTimeInterval(60)) == [BanStore.Entry(ban: short, applied: true)])
        #expect(try store.expire(at: Self.start.addingTimeInterval(60)).isEmpty)
        #expect(Set(try store.activeBans(at: Self.start)) == [long, forever])
        #expect(try store.expire(at: .distantFuture).map(\.ban) == [long])
        #expect(try store.activeBans(at: .distantFuture) == [forever])
    }

    @Test("observe mode's promotions are listed, not active, and a real promotion replaces them")
    func observeMode() throws {
        let store = try BanStore.inMemory()
        let observed = try store.promote([Self.abuser], now: Self.start, schedule: Self.noJitter, applied: false)
        #expect(observed.bans.count == 1)
        #expect(try store.activeBans(at: Self.start).isEmpty)
        #expect(try store.observedBans(at: Self.start) == observed.bans)
        #expect(try store.allEntries() == [BanStore.Entry(ban: observed.bans[0], applied: false)])
        // Observed again: nothing new.
        #expect(try store.promote([Self.abuser], now: Self.start, schedule: Self.noJitter, applied: false).alreadyBanned == 1)
        // Switched to enforcing: the would-ban does not stop the ban.
        let applied = try store.promote([Self.abuser], now: Self.start.addingTimeInterval(10), schedule: Self.noJitter, applied: true)
        #expect(applied.bans.count == 1)
        #expect(applied.bans.first?.offence == 1, "what observe mode recorded is no offence: the first real ban is not doubled")
        #expect(try store.activeBans(at: Self.start.addingTimeInterval(10)) == applied.bans)
        #expect(try store.observedBans(at: Self.start).isEmpty)
    }

    @Test("at most `limit` new bans per promotion; the rest are deferred, not recorded")
    func limit() throws {
        let store = try BanStore.inMemory()
        let candidates = (0..<10).map { BanCandidate(prefix: Self.prefix("192.0.2.\($0)/32"), origin: .rateSource) }
        _ = try store.promote([candidates[0]], now: Self.start, schedule: Self.noJitter, applied: true)
        let promotion = try store.promote(candidates, now: Self.start, schedule: Self.noJitter, applied: true, limit: 4)
        #expect(promotion.alreadyBanned == 1)
        #expect(promotion.bans.map(\.prefix) == candidates[1...4].map(\.prefix))
        #expect(promotion.deferred == Array(candidates[5...]))
        #expect(try store.offences(of: candidates[5].prefix) == 0)
    }

    @Test("removal deletes one origin or all, and returns what it deleted")
    func removal() throws {
        let store = try BanStore.inMemory()
        let prefix = Self.prefix("203.0.113.0/24")
        let manual = Ban(prefix: prefix, origin: .manual, created: Self.start, expires: nil)
        let tls = Ban(prefix: prefix, origin: .tls, created: Self.start, expires: Self.start.addingTimeInterval(60))
        try store.add([manual, tls])
        #expect(try store.remove(prefix: prefix, origin: .tls).map(\.ban) == [tls])
        #expect(try store.remove(prefix: prefix, origin: .tls).isEmpty)
        try store.add(tls)
        #expect(Set(try store.remove(prefix: prefix).map(\.ban)) == [manual, tls])
        #expect(try store.allEntries().isEmpty)
    }

    @Test("jittered lengths stay within the schedule's bounds")
    func jitteredPromotion() throws {
        let store = try BanStore.inMemory()
        let schedule = BanSchedule(banFor: .seconds(1800), maxBan: .seconds(86400), history: .seconds(86400))
        let candidates = (0..<200).map { BanCandidate(prefix: Self.prefix("192.0.2.\($0)/32"), origin: .rateSource) }
        let bans = try store.promote(candidates, now: Self.start, schedule: schedule, applied: true).bans
        let lengths = bans.compactMap { $0.expires?.timeIntervalSince(Self.start) }
        #expect(lengths.count == 200)
        #expect(lengths.allSatisfy { $0 >= 1800 && $0 <= 1980.001 })
        #expect(Set(lengths).count > 1)
    }
}
