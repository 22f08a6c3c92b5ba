import Glibc
import PilotSQLite
import Testing

@Suite struct SQLiteTests {
    let path: String

    init() throws {
        var template = Array("/tmp/pilot-sqlite-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        try #require(made != nil)
        path = String(cString: made!) + "/test.db"
    }

    @Test func roundTripsEveryValueType() throws {
        let db = try SQLiteConnection(path: path)
        try db.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)")
        let insert = try db.prepare("INSERT INTO t VALUES (?, ?, ?, ?, ?)")
        try insert.run(.integer(Int64.min), .real(-0.5), .text("wéb-01"), .blob([0, 1, 255]), .null)
        try insert.run(.integer(42), .real(.infinity), .text(""), .blob([]), .null)
        let rows = try db.prepare("SELECT i, r, s, b, n FROM t ORDER BY rowid").query()
        #expect(rows == [
            [.integer(Int64.min), .real(-0.5), .text("wéb-01"), .blob([0, 1, 255]), .null],
            [.integer(42), .real(.infinity), .text(""), .blob([]), .null],
        ])
    }

    @Test func transactionsRollBackOnError() throws {
        let db = try SQLiteConnection(path: path)
        try db.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
        let insert = try db.prepare("INSERT INTO t VALUES (?)")
        try insert.run(.text("a"))
        #expect(throws: SQLiteError.self) {
            try db.transaction {
                try insert.run(.text("b"))
                try insert.run(.text("a")) // constraint violation
            }
        }
        #expect(try db.prepare("SELECT k FROM t").query() == [[.text("a")]])
        do { try insert.run(.text("a")) } catch { #expect(error.isConstraintViolation) }
    }

    @Test func usesWALAndSurvivesReopening() throws {
        do {
            let db = try SQLiteConnection(path: path)
            #expect(try db.prepare("PRAGMA journal_mode").query() == [[.text("wal")]])
            try db.execute("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7)")
        }
        let again = try SQLiteConnection(path: path)
        #expect(try again.prepare("SELECT v FROM t").query() == [[.integer(7)]])
    }

    @Test func reportsErrorsWithSQLiteMessages() throws {
        let db = try SQLiteConnection(path: path)
        #expect { try db.prepare("SELEC nonsense") } throws: { "\($0)".contains("syntax error") }
        #expect { try SQLiteConnection(path: "/nonexistent-dir/x.db") } throws: { "\($0)".contains("cannot open /nonexistent-dir/x.db") }
    }
}
