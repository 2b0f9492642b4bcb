import CSQLite

/// One SQLite connection with a cache of prepared statements.
///
/// Not thread-safe: `SQLiteDatabase` lends each connection to one caller at a time.
final class SQLiteConnection {
    private let handle: OpaquePointer
    private var statements: [String: OpaquePointer] = [:]
    /// The `synchronous` setting last made by `syncCommits`.
    private var commitsSynced: Bool?

    init(path: String, readOnly: Bool) throws(SQLiteError) {
        var handle: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_NOMUTEX
        let status = sqlite3_open_v2(path, &handle, flags, nil)
        guard status == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(handle)
            throw SQLiteError(code: status, message: "open \(path): \(message)")
        }
        self.handle = handle
        // Concurrent writers from other connections wait instead of failing at once.
        sqlite3_busy_timeout(handle, 10_000)
    }

    deinit {
        for statement in statements.values { sqlite3_finalize(statement) }
        sqlite3_close_v2(handle)
    }

    /// Whether the next commits are fsynced (`synchronous=FULL`) or not (`NORMAL`: in WAL
    /// mode atomic and crash-safe, but a power cut may roll them back). Only changes
    /// the setting when it differs; a failure to change it throws, so a commit never
    /// runs with less durability than asked for.
    func syncCommits(_ synced: Bool) throws(SQLiteError) {
        guard commitsSynced != synced else { return }
        commitsSynced = nil
        try execute(synced ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL")
        commitsSynced = synced
    }

    /// Whether a transaction is open (SQLite may have rolled one back by itself).
    var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Runs SQL text that returns no rows (schema changes, pragmas, several statements).
    func execute(_ sql: String) throws(SQLiteError) {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let status = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if status != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? "error \(status)"
            sqlite3_free(errorMessage)
            throw SQLiteError(code: status, message: message)
        }
    }

    /// Runs `sql` with `arguments`, calling `row` for every result row.
    func query(_ sql: String, _ arguments: [SQLiteValue] = [], row: (SQLiteRow) throws -> Void = { _ in }) throws {
        let statement = try prepared(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (index, argument) in arguments.enumerated() {
            try check(argument.bind(to: statement, at: Int32(index + 1)))
        }
        while true {
            let status = sqlite3_step(statement)
            if status == SQLITE_DONE { return }
            guard status == SQLITE_ROW else { throw error(status) }
            try row(SQLiteRow(statement: statement))
        }
    }

    /// The rows of `sql`, each mapped by `transform`.
    func rows<T>(_ sql: String, _ arguments: [SQLiteValue] = [], _ transform: (SQLiteRow) throws -> T) throws -> [T] {
        var result: [T] = []
        try query(sql, arguments) { result.append(try transform($0)) }
        return result
    }

    /// The first row of `sql` mapped by `transform`, or `nil`.
    func first<T>(_ sql: String, _ arguments: [SQLiteValue] = [], _ transform: (SQLiteRow) throws -> T) throws -> T? {
        var result: T?
        try query(sql, arguments) { row in
            if result == nil { result = try transform(row) }
        }
        return result
    }

    /// Rows changed by the last INSERT/UPDATE/DELETE.
    var changes: Int { Int(sqlite3_changes(handle)) }

    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Runs `body` in one IMMEDIATE transaction: the write lock is taken up front so
    /// that a transaction never fails half-way on a lock upgrade.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    private func prepared(_ sql: String) throws(SQLiteError) -> OpaquePointer {
        if let statement = statements[sql] { return statement }
        var statement: OpaquePointer?
        let status = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard status == SQLITE_OK, let statement else { throw error(status) }
        statements[sql] = statement
        return statement
    }

    private func check(_ status: Int32) throws(SQLiteError) {
        guard status == SQLITE_OK else { throw error(status) }
    }

    private func error(_ status: Int32) -> SQLiteError {
        SQLiteError(code: status, message: String(cString: sqlite3_errmsg(handle)))
    }
}

struct SQLiteError: Error, CustomStringConvertible, Sendable {
    let code: Int32
    let message: String
    var description: String { "SQLite error \(code): \(message)" }

    /// SQLITE_FULL (also as the primary code of an extended one): SQLite's unix VFS
    /// reports a write that failed with ENOSPC this way.
    var isDiskFull: Bool { code & 0xFF == SQLITE_FULL }
}

extension MetadataError {
    /// `error` as the metadata layer reports it: its own errors as they are, SQLite's (or
    /// anything else from below) as `backend` with the cause kept.
    init(_ error: any Error) {
        switch error {
        case let error as MetadataError: self = error
        case let error as SQLiteError:
            self = error.isDiskFull ? .storageFull : .backend(MetadataBackendError(code: error.code, underlying: error))
        default: self = .backend(MetadataBackendError(code: nil, underlying: error))
        }
    }
}
