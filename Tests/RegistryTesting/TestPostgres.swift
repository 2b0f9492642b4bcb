import Foundation
import Logging
import Metadata
import PostgresNIO

/// The PostgreSQL server the tests use: the throw-away one that `scripts/test.sh` starts
/// (`scripts/postgres.sh`), described by the file `REGISTRYD_TEST_POSTGRES_ENV` names.
/// Each test gets a database of its own.
///
/// ```swift
/// let location = try await TestPostgres.makeDatabase()   // a fresh, empty database
/// ```
public enum TestPostgres {
    /// The server's main database, with the password of the test role.
    public static func serverLocation() throws -> PostgresLocation {
        let values = try settings()
        guard let url = values["POSTGRES_URL"] else { throw TestPostgresError.notConfigured }
        return try PostgresLocation(parsing: url + "?sslmode=disable").withPassword(configured: values["PGPASSWORD"], environment: [:])
    }

    /// A new empty database on the test server, for one test.
    public static func makeDatabase() async throws -> PostgresLocation {
        let server = try serverLocation()
        let name = "registryd_test_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "_"))"
        try await administer(server, "CREATE DATABASE \(name)")
        return try PostgresLocation(parsing: "postgres://\(server.user)@\(server.host):\(server.port)/\(name)?sslmode=disable")
            .withPassword(configured: server.password, environment: [:])
    }

    /// Drops a database `makeDatabase` made (its connections are closed first).
    public static func dropDatabase(_ location: PostgresLocation) async throws {
        try await administer(try serverLocation(), "DROP DATABASE IF EXISTS \(location.database) WITH (FORCE)")
    }

    /// Runs one statement on `location` with a connection of its own.
    public static func administer(_ location: PostgresLocation, _ sql: String) async throws {
        _ = try await administerRows(location, sql)
    }

    /// Runs one statement on `location` with a connection of its own. - Returns: the
    /// first column of each row it answers, as text.
    public static func administerRows(_ location: PostgresLocation, _ sql: String) async throws -> [String] {
        let configuration = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.user, password: location.password,
            database: location.database, tls: .disable)
        let logger = Logger(label: "test-postgres")
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        do {
            var values: [String] = []
            for try await row in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger) {
                var cells = row.makeIterator()
                values.append(try cells.next()?.decode(String.self) ?? "")
            }
            try await connection.close()
            return values
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// The lines of `postgres.env`: `POSTGRES_URL` and `PGPASSWORD`.
    public static func settings() throws -> [String: String] {
        guard let file = ProcessInfo.processInfo.environment["REGISTRYD_TEST_POSTGRES_ENV"] else { throw TestPostgresError.notConfigured }
        var values: [String: String] = [:]
        for line in try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return values
    }
}

public enum TestPostgresError: Error, CustomStringConvertible {
    case notConfigured

    public var description: String {
        "no PostgreSQL server for the tests: run them with scripts/test.sh (it starts one with scripts/postgres.sh), "
            + "or point REGISTRYD_TEST_POSTGRES_ENV at the postgres.env of `scripts/postgres.sh start DIR`"
    }
}
