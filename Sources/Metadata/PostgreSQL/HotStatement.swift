import NIOCore
import PostgresNIO

/// A statement on a hot path (a pull's lookups, each step of a push): every connection of
/// the pool prepares it once under its own name, so PostgreSQL parses and plans it once
/// per connection instead of once per request, and each later run sends only its values.
///
/// The text names its values `$1`, `$2`, … in the order the call passes them; where a
/// value may be NULL the text casts it (`$3::text`), because a statement's value types are
/// fixed by its first run.
///
/// ```swift
/// enum UserByName: HotStatement {
///     static let sql = "SELECT name, password_hash FROM users WHERE name = $1"
/// }
/// let user = try await connection.first(UserByName.self, name) { try $0.decode((String, String).self) }
/// ```
protocol HotStatement {
    static var sql: String { get }
}

/// A value a hot statement binds: the few types the metadata layer stores.
protocol HotStatementValue: Sendable {
    func bind(into bindings: inout PostgresBindings)
}

extension String: HotStatementValue {
    func bind(into bindings: inout PostgresBindings) { bindings.append(self) }
}

extension Int64: HotStatementValue {
    func bind(into bindings: inout PostgresBindings) { bindings.append(self) }
}

extension Bool: HotStatementValue {
    func bind(into bindings: inout PostgresBindings) { bindings.append(self) }
}

extension ByteBuffer: HotStatementValue {
    func bind(into bindings: inout PostgresBindings) { bindings.append(self) }
}

extension Array: HotStatementValue where Element == String {
    func bind(into bindings: inout PostgresBindings) { bindings.append(self) }
}

extension Optional: HotStatementValue where Wrapped: HotStatementValue {
    func bind(into bindings: inout PostgresBindings) {
        if let self { self.bind(into: &bindings) } else { bindings.appendNull() }
    }
}

/// PostgresNIO's form of a prepared statement, named after the `HotStatement` it runs.
private struct Prepared<Statement: HotStatement>: PostgresPreparedStatement {
    typealias Row = PostgresRow

    static var name: String { "registryd.\(Statement.self)" }
    static var sql: String { Statement.sql }

    let bindings: PostgresBindings

    func makeBindings() -> PostgresBindings { bindings }

    func decodeRow(_ row: PostgresRow) -> PostgresRow { row }
}

extension PostgresConnection {
    /// Every row of a hot statement run with `values`, each turned into a value by `row`.
    func rows<Statement: HotStatement, T, each Value: HotStatementValue>(
        _ statement: Statement.Type, _ values: repeat each Value, row: (PostgresRow) throws -> T
    ) async throws -> [T] {
        var bindings = PostgresBindings()
        for value in repeat each values { value.bind(into: &bindings) }
        var result: [T] = []
        for try await each in try await execute(Prepared<Statement>(bindings: bindings), logger: logger) {
            result.append(try row(each))
        }
        return result
    }

    /// The first row of a hot statement run with `values`, or `nil` when there is none.
    func first<Statement: HotStatement, T, each Value: HotStatementValue>(
        _ statement: Statement.Type, _ values: repeat each Value, row: (PostgresRow) throws -> T
    ) async throws -> T? {
        try await rows(statement, repeat each values, row: row).first
    }

    /// Runs a hot statement; with `RETURNING 1` the count is the number of rows it changed.
    @discardableResult
    func run<Statement: HotStatement, each Value: HotStatementValue>(
        _ statement: Statement.Type, _ values: repeat each Value
    ) async throws -> Int {
        try await rows(statement, repeat each values) { _ in () }.count
    }
}
