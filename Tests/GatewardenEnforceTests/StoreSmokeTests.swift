import GRDB
import Testing

/// SQLite is linked and usable: the store's foundation.
@Suite("SQLite")
struct SQLiteTests {
    @Test("an in-memory database answers")
    func answers() throws {
        let queue = try DatabaseQueue()
        let value = try queue.read { try Int.fetchOne($0, sql: "SELECT 41 + 1") }
        #expect(value == 42)
    }
}
