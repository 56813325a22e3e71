#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GatewardenCore
import GatewardenPolicy
import GRDB

/// The bans and the offence history, in SQLite, so bans outlive kill -9, restarts and reboots.
/// The loop writes a ban here before it touches the kernel, and restores the kernel from here.
///
/// One file, `<stateDirectory>/gatewarden.sqlite` (the directory created 0700, the file 0600), in WAL
/// mode with full synchronous commits: a ban `promote` returned is on disk. Times are wall-clock Unix
/// seconds (REAL), readable with `datetime(expires, 'unixepoch')`; `expires` NULL is "until removed".
/// Observe mode's promotions are kept as bans with `applied = 0`: listed, never restored.
///
///     let store = try BanStore(directory: "/var/lib/gatewarden")
///     let promotion = try store.promote([BanCandidate(prefix: abuser, origin: .rateSource)],
///                                       now: Date(), schedule: BanSchedule(settings), applied: true)
///     // then apply promotion.bans to XDP and nftables
///     try store.activeBans(at: Date())   // what to restore after a restart
public final class BanStore: Sendable {
    /// Where the store lives unless told otherwise.
    public static let defaultDirectory = "/var/lib/gatewarden"
    /// The file's name inside the state directory.
    public static let fileName = "gatewarden.sqlite"

    /// The store's file, or `:memory:`.
    public let path: String
    private let database: DatabaseQueue

    /// A store that cannot be opened or used, naming its file and what is wrong.
    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public let path: String
        public let problem: String
        public var description: String { "\(path): \(problem)" }
    }

    /// What one `promote` did.
    public struct Promotion: Sendable, Equatable {
        /// The bans written, in the candidates' order: the loop applies these to the kernel.
        public var bans: [Ban] = []
        /// Candidates that already had a ban in force for the same origin (nothing written).
        public var alreadyBanned = 0
        /// Candidates left out because `limit` new bans were written; still due, not recorded.
        public var deferred: [BanCandidate] = []

        public init(bans: [Ban] = [], alreadyBanned: Int = 0, deferred: [BanCandidate] = []) {
            self.bans = bans
            self.alreadyBanned = alreadyBanned
            self.deferred = deferred
        }
    }

    /// A ban as stored: whether the kernel has it (`applied`) or observe mode only recorded it.
    public struct Entry: Sendable, Equatable {
        public var ban: Ban
        public var applied: Bool

        public init(ban: Ban, applied: Bool) {
            self.ban = ban
            self.applied = applied
        }
    }

    /// Opens `<directory>/gatewarden.sqlite` if it exists; nil when there is none (no ban was ever
    /// stored there): for readers, which must not create a store in a mistyped directory.
    public static func existing(directory: String) throws(BanStore.Error) -> BanStore? {
        let path = URL(fileURLWithPath: directory).appendingPathComponent(fileName).path
        var status = stat()
        guard lstat(path, &status) == 0 else {
            if errno == ENOENT { return nil }
            throw Error(path: path, problem: "cannot be read (\(systemError()))")
        }
        return try BanStore(directory: directory)
    }

    /// Opens (creating when missing) `<directory>/gatewarden.sqlite`. Refuses, naming the file, a
    /// file that is not a Gatewarden store, is corrupt, or was written by a newer Gatewarden.
    public convenience init(directory: String = BanStore.defaultDirectory) throws(BanStore.Error) {
        let path = URL(fileURLWithPath: directory).appendingPathComponent(Self.fileName).path
        try Self.prepareFile(path, in: directory)
        var configuration = Self.configuration
        configuration.journalMode = .wal
        let database: DatabaseQueue
        do {
            database = try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw Self.openError(path, error)
        }
        try self.init(path: path, database: database)
    }

    /// A store in memory, gone when released: for tests and dry runs.
    public static func inMemory() throws(BanStore.Error) -> BanStore {
        let database: DatabaseQueue
        do {
            database = try DatabaseQueue(configuration: configuration)
        } catch {
            throw openError(":memory:", error)
        }
        return try BanStore(path: ":memory:", database: database)
    }

    private init(path: String, database: DatabaseQueue) throws(BanStore.Error) {
        self.path = path
        self.database = database
        do {
            try database.writeWithoutTransaction { db in try Self.checkIntegrity(db, path: path) }
            try Self.migrator.migrate(database)
        } catch let error as BanStore.Error {
            throw error
        } catch {
            throw Self.openError(path, error)
        }
    }

    // MARK: Promotions

    /// Writes a ban for each candidate that has none in force for its origin, in ONE transaction:
    /// counts the prefix's offences within `schedule.history` (any origin), records this offence,
    /// and bans for `schedule.length(ofOffence:)`. At most `limit` bans are written; the rest come
    /// back as `deferred`.
    ///
    /// With `applied` false (observe mode) the bans are recorded as "would ban": listed by
    /// `observedBans`, never by `activeBans`. An observed ban does not stop a real one.
    public func promote(_ candidates: [BanCandidate], now: Date, schedule: BanSchedule, applied: Bool,
                        limit: Int = .max) throws(BanStore.Error) -> Promotion {
        let now = Self.canonical(now)
        let historyStart = now.timeIntervalSince1970 - schedule.history.timeInterval
        return try write { db in
            let existing = try db.cachedStatement(sql: "SELECT expires, applied FROM bans WHERE prefix = ? AND origin = ?")
            let countOffences = try db.cachedStatement(sql: "SELECT COUNT(*) FROM offences WHERE prefix = ? AND at > ?")
            let recordOffence = try db.cachedStatement(sql: "INSERT INTO offences (prefix, origin, at) VALUES (?, ?, ?)")
            let writeBan = try db.cachedStatement(sql: Self.upsertBan)
            var promotion = Promotion()
            for candidate in candidates {
                let prefix = candidate.prefix.description
                let origin = candidate.origin.rawValue
                if let row = try Row.fetchOne(existing, arguments: [prefix, origin]) {
                    let expires = (row[0] as DatabaseValue).storage
                    let inForce: Bool
                    switch expires {
                    case .double(let seconds): inForce = seconds > now.timeIntervalSince1970
                    case .int64(let seconds): inForce = Double(seconds) > now.timeIntervalSince1970
                    default: inForce = true
                    }
                    let wasApplied = (row[1] as DatabaseValue) != 0.databaseValue
                    if inForce && (wasApplied || !applied) {
                        promotion.alreadyBanned += 1
                        continue
                    }
                }
                guard promotion.bans.count < limit else {
                    promotion.deferred.append(candidate)
                    continue
                }
                let past = try Int.fetchOne(countOffences, arguments: [prefix, historyStart]) ?? 0
                let offence = past + 1
                // What observe mode would have banned is no offence: switching to enforcing must not
                // start a prefix at a doubled ban.
                if applied { try recordOffence.execute(arguments: [prefix, origin, now.timeIntervalSince1970]) }
                let expires = Self.canonical(now.addingTimeInterval(schedule.length(ofOffence: offence).timeInterval))
                let ban = Ban(prefix: candidate.prefix, origin: candidate.origin, created: now, expires: expires,
                              offence: offence)
                try writeBan.execute(arguments: Self.arguments(ban, applied: applied))
                promotion.bans.append(ban)
            }
            return promotion
        }
    }

    // MARK: Operators' and the policy's bans

    /// Writes `ban`, replacing any ban of the same prefix and origin; returns it as stored (its
    /// dates rounded to the store's Unix seconds, so it equals what is read back).
    @discardableResult
    public func add(_ ban: Ban, applied: Bool = true) throws(BanStore.Error) -> Ban {
        try add([ban], applied: applied)[0]
    }

    /// Writes `bans` in one transaction, replacing bans of the same prefix and origin.
    @discardableResult
    public func add(_ bans: [Ban], applied: Bool = true) throws(BanStore.Error) -> [Ban] {
        let stored = bans.map(Self.canonical)
        try write { db in
            let writeBan = try db.cachedStatement(sql: Self.upsertBan)
            for ban in stored {
                try writeBan.execute(arguments: Self.arguments(ban, applied: applied))
            }
        }
        return stored
    }

    /// Deletes the bans of `prefix` (of one origin, or all) and returns them; offences stay in the history.
    @discardableResult
    public func remove(prefix: AddressPrefix, origin: BanOrigin? = nil) throws(BanStore.Error) -> [Entry] {
        var condition = "prefix = ?"
        var arguments: StatementArguments = [prefix.description]
        if let origin {
            condition += " AND origin = ?"
            arguments += [origin.rawValue]
        }
        return try deleteReturning(where: condition, arguments: arguments)
    }

    // MARK: Reading

    /// The bans in the kernel's charge at `date`: applied and unexpired. What a restart restores.
    public func activeBans(at date: Date) throws(BanStore.Error) -> [Ban] {
        try entries(where: "applied = 1 AND (expires IS NULL OR expires > ?)", arguments: [date.timeIntervalSince1970])
            .map(\.ban)
    }

    /// Observe mode's promotions in force at `date`: what would be banned.
    public func observedBans(at date: Date) throws(BanStore.Error) -> [Ban] {
        try entries(where: "applied = 0 AND (expires IS NULL OR expires > ?)", arguments: [date.timeIntervalSince1970])
            .map(\.ban)
    }

    /// Every stored ban, applied or observed, expired-but-not-yet-collected included: `bans list`.
    public func allEntries() throws(BanStore.Error) -> [Entry] {
        try entries(where: "1", arguments: [])
    }

    /// How many bans are in force at `date`, by origin: applied, and recorded by observe mode. One
    /// counting query, so a scrape costs the same with 65,000 bans as with ten.
    public func counts(at date: Date) throws(BanStore.Error) -> [BanOrigin: (applied: Int, observed: Int)] {
        try read { db in
            var counts: [BanOrigin: (applied: Int, observed: Int)] = [:]
            let rows = try Row.fetchAll(db, sql: """
                SELECT origin, applied, COUNT(*) FROM bans WHERE expires IS NULL OR expires > ? GROUP BY origin, applied
                """, arguments: [date.timeIntervalSince1970])
            for row in rows {
                guard let origin = BanOrigin(rawValue: row[0]) else { continue }
                let count: Int = row[2]
                var entry = counts[origin] ?? (0, 0)
                if (row[1] as Int) == 1 { entry.applied += count } else { entry.observed += count }
                counts[origin] = entry
            }
            return counts
        }
    }

    /// How many offences of `prefix` (any origin) are recorded, only those after `since` if given.
    public func offences(of prefix: AddressPrefix, since: Date? = nil) throws(BanStore.Error) -> Int {
        try read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM offences WHERE prefix = ? AND at > ?",
                             arguments: [prefix.description, since?.timeIntervalSince1970 ?? -Double.greatestFiniteMagnitude]) ?? 0
        }
    }

    // MARK: Housekeeping

    /// Deletes the bans whose time is up at `date` and returns them: the loop removes the applied
    /// ones from the kernel (the kernel's own timeouts usually beat it).
    @discardableResult
    public func expire(at date: Date) throws(BanStore.Error) -> [Entry] {
        try deleteReturning(where: "expires IS NOT NULL AND expires <= ?", arguments: [date.timeIntervalSince1970])
    }

    /// Forgets offences recorded at or before `date` (now minus `history`); returns how many.
    @discardableResult
    public func pruneHistory(olderThan date: Date) throws(BanStore.Error) -> Int {
        try write { db in
            try db.execute(sql: "DELETE FROM offences WHERE at <= ?", arguments: [date.timeIntervalSince1970])
            return db.changesCount
        }
    }

    // MARK: Schema

    private static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: bans and offences") { db in
            // Keyed by (prefix, origin): one prefix may be banned for several reasons, each
            // with its own expiry; the prefix is AddressPrefix's canonical text.
            try db.execute(sql: """
                CREATE TABLE bans (
                    prefix TEXT NOT NULL,
                    origin TEXT NOT NULL,
                    created REAL NOT NULL,
                    expires REAL,
                    offence INTEGER NOT NULL CHECK (offence >= 1),
                    applied INTEGER NOT NULL CHECK (applied IN (0, 1)),
                    PRIMARY KEY (prefix, origin)
                ) WITHOUT ROWID;
                CREATE INDEX bans_by_expiry ON bans (expires) WHERE expires IS NOT NULL;
                CREATE TABLE offences (
                    prefix TEXT NOT NULL,
                    origin TEXT NOT NULL,
                    at REAL NOT NULL
                );
                CREATE INDEX offences_by_prefix ON offences (prefix, at);
                CREATE INDEX offences_by_time ON offences (at);
                """)
        }
        return migrator
    }()

    private static let upsertBan = """
        INSERT OR REPLACE INTO bans (prefix, origin, created, expires, offence, applied) VALUES (?, ?, ?, ?, ?, ?)
        """

    private static var configuration: Configuration {
        var configuration = Configuration()
        // The CLI (`bans add`) and the daemon share the file: wait for each other's short transactions.
        configuration.busyMode = .timeout(10)
        configuration.label = "gatewarden.bans"
        configuration.prepareDatabase { db in
            // A commit is on disk before the kernel is touched; one commit per interval costs nothing.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        return configuration
    }

    /// Refuses a database that is damaged, belongs to something else, or is newer than this Gatewarden.
    private static func checkIntegrity(_ db: Database, path: String) throws {
        let check = try String.fetchAll(db, sql: "PRAGMA quick_check")
        guard check == ["ok"] else {
            throw Error(path: path, problem: "the database is corrupt (\(check.prefix(3).joined(separator: "; "))); "
                + "move it aside to start with no bans")
        }
        let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
        if !tables.isEmpty && !tables.contains("grdb_migrations") {
            throw Error(path: path, problem: "is an SQLite database but not a Gatewarden ban store "
                + "(tables: \(tables.prefix(5).joined(separator: ", ")))")
        }
        if try migrator.hasBeenSuperseded(db) {
            let unknown = try migrator.appliedIdentifiers(db).subtracting(migrator.migrations).sorted()
            throw Error(path: path, problem: "was written by a newer Gatewarden (schema steps unknown here: "
                + "\(unknown.joined(separator: ", "))); upgrade Gatewarden or move the file aside")
        }
    }

    // MARK: Files

    /// Creates the directory (0700) when missing and the file (0600), so SQLite's own files
    /// (`-wal`, `-shm`, which copy the file's mode) are never readable by others either.
    private static func prepareFile(_ path: String, in directory: String) throws(BanStore.Error) {
        var status = stat()
        if lstat(directory, &status) != 0 {
            guard errno == ENOENT else { throw Error(path: directory, problem: "cannot be read (\(systemError()))") }
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                throw Error(path: directory, problem: "cannot be created (\(error.localizedDescription))")
            }
            // The umask may have taken bits away, never added; make it exactly 0700.
            guard chmod(directory, 0o700) == 0 else { throw Error(path: directory, problem: "chmod 0700: \(systemError())") }
        } else if status.st_mode & S_IFMT == S_IFLNK {
            throw Error(path: directory, problem: "is a symbolic link; give the real directory")
        } else if status.st_mode & S_IFMT != S_IFDIR {
            throw Error(path: directory, problem: "is not a directory")
        }
        // The store decides what a root process bans: a directory another user owns or may write
        // to (a planted store, a link in place of the file's -wal) is refused.
        guard lstat(directory, &status) == 0 else { throw Error(path: directory, problem: "cannot be read (\(systemError()))") }
        guard status.st_uid == geteuid() else {
            throw Error(path: directory, problem: "is owned by uid \(status.st_uid), not by this user (uid \(geteuid())); "
                + "the ban store's directory must be")
        }
        guard status.st_mode & 0o022 == 0 else {
            throw Error(path: directory, problem: "may be written by others (mode \(String(status.st_mode & 0o777, radix: 8))); "
                + "make it 0700")
        }
        let descriptor = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let reason = errno == ELOOP ? "is a symbolic link; the ban store must be a regular file" : systemError()
            throw Error(path: path, problem: "cannot be opened (\(reason))")
        }
        defer { close(descriptor) }
        guard fstat(descriptor, &status) == 0 else { throw Error(path: path, problem: systemError()) }
        guard status.st_mode & S_IFMT == S_IFREG else { throw Error(path: path, problem: "is not a regular file") }
        guard fchmod(descriptor, 0o600) == 0 else { throw Error(path: path, problem: "chmod 0600: \(systemError())") }
    }

    private static func systemError() -> String {
        String(cString: strerror(errno))
    }

    private static func openError(_ path: String, _ error: any Swift.Error) -> Error {
        if let error = error as? Error { return error }
        guard let database = error as? DatabaseError else {
            return Error(path: path, problem: "cannot be opened (\(error))")
        }
        switch database.resultCode {
        case .SQLITE_NOTADB:
            return Error(path: path, problem: "is not an SQLite database (damaged, or another file); "
                + "move it aside to start with no bans")
        case .SQLITE_CORRUPT:
            return Error(path: path, problem: "the database is corrupt (\(database.message ?? "no detail")); "
                + "move it aside to start with no bans")
        default:
            return Error(path: path, problem: "cannot be opened (SQLite: \(database.message ?? "\(database.resultCode)"))")
        }
    }

    // MARK: Rows

    private func write<T>(_ body: (Database) throws -> T) throws(BanStore.Error) -> T {
        do {
            return try database.write(body)
        } catch {
            throw failure(error)
        }
    }

    private func read<T>(_ body: (Database) throws -> T) throws(BanStore.Error) -> T {
        do {
            return try database.read(body)
        } catch {
            throw failure(error)
        }
    }

    private func failure(_ error: any Swift.Error) -> Error {
        if let error = error as? Error { return error }
        if let database = error as? DatabaseError {
            return Error(path: path, problem: "SQLite: \(database.message ?? "\(database.resultCode)")")
        }
        return Error(path: path, problem: "\(error)")
    }

    private static let columns = "prefix, origin, created, expires, offence, applied"

    private func entries(where condition: String, arguments: StatementArguments) throws(BanStore.Error) -> [Entry] {
        try read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT \(Self.columns) FROM bans WHERE \(condition)", arguments: arguments)
            var entries: [Entry] = []
            while let row = try rows.next() {
                entries.append(try decode(row))
            }
            return entries
        }
    }

    private func deleteReturning(where condition: String, arguments: StatementArguments) throws(BanStore.Error) -> [Entry] {
        try write { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT \(Self.columns) FROM bans WHERE \(condition)", arguments: arguments)
            var entries: [Entry] = []
            while let row = try rows.next() {
                entries.append(try decode(row))
            }
            try db.execute(sql: "DELETE FROM bans WHERE \(condition)", arguments: arguments)
            return entries
        }
    }

    /// A row as a ban; a row edited into nonsense is an error naming it, never a crash.
    private func decode(_ row: Row) throws -> Entry {
        let values = (0..<6).map { (row[$0] as DatabaseValue).storage }
        func text(_ index: Int) -> String? {
            if case .string(let value) = values[index] { return value }
            return nil
        }
        func number(_ index: Int) -> Double? {
            switch values[index] {
            case .double(let value) where value.isFinite: return value
            case .int64(let value): return Double(value)
            default: return nil
            }
        }
        let prefixText = text(0) ?? "\(values[0])"
        let originText = text(1) ?? "\(values[1])"
        func bad(_ problem: String) -> Error {
            Error(path: path, problem: "bans row (prefix '\(prefixText)', origin '\(originText)'): \(problem)")
        }
        let prefix: AddressPrefix
        do {
            prefix = try AddressPrefix(prefixText)
        } catch {
            throw bad("\(error)")
        }
        if let problem = prefix.listProblem { throw bad(problem) }
        guard let origin = BanOrigin(rawValue: originText) else { throw bad("unknown origin") }
        guard let created = number(2) else { throw bad("created is not a time") }
        let expires: Date?
        switch values[3] {
        case .null: expires = nil
        default:
            guard let seconds = number(3) else { throw bad("expires is not a time") }
            expires = Date(timeIntervalSince1970: seconds)
        }
        guard let offence = number(4), offence >= 1, offence <= Double(Int32.max) else { throw bad("offence is not a count") }
        guard let applied = number(5), applied == 0 || applied == 1 else { throw bad("applied is not 0 or 1") }
        let ban = Ban(prefix: prefix, origin: origin, created: Date(timeIntervalSince1970: created), expires: expires,
                      offence: Int(offence))
        return Entry(ban: ban, applied: applied == 1)
    }

    private static func arguments(_ ban: Ban, applied: Bool) -> StatementArguments {
        [ban.prefix.description, ban.origin.rawValue, ban.created.timeIntervalSince1970,
         ban.expires?.timeIntervalSince1970, ban.offence, applied]
    }

    /// `date` as the store keeps it (Unix seconds in a Double): a second round trip changes nothing.
    private static func canonical(_ date: Date) -> Date {
        Date(timeIntervalSince1970: date.timeIntervalSince1970)
    }

    private static func canonical(_ ban: Ban) -> Ban {
        var ban = ban
        ban.created = canonical(ban.created)
        ban.expires = ban.expires.map(canonical)
        return ban
    }
}
