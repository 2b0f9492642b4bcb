import Logging
import NIOSSL
import PostgresNIO
import Synchronization

/// A PostgreSQL database shared by every registryd instance of a cluster, through
/// PostgresNIO's connection pool: queries run on SwiftNIO's event loops, and a caller
/// waiting for one suspends instead of holding a thread.
///
/// Every write runs in a SERIALIZABLE transaction and is retried when PostgreSQL reports a
/// serialization failure or a deadlock. That keeps the one property the SQLite backend
/// gets from its single writer, on which the garbage collection protocol rests: a
/// transaction that checks a condition and changes something (a collection marking a
/// blob nobody pins, a push linking a blob nobody is deleting) behaves as if it ran alone.
final class PostgresDatabase: Sendable {
    let client: PostgresClient
    let logger: Logger
    /// Hot answers, emptied by every write of any instance (see `ChangeFeed`).
    let cache = ReadCache()
    private let running: Task<Void, Never>
    /// Whether the server answers: false from the moment the change feed loses its
    /// connection until it has one again. Meanwhile every call fails at once with
    /// `MetadataError.unavailable` (a 503 with Retry-After) instead of queueing for a
    /// connection the pool keeps failing to open.
    let reachable = Atomic<Bool>(true)

    /// Most attempts of one write that keeps meeting serialization failures.
    static let maximumAttempts = 30

    init(location: PostgresLocation, poolSize: Int, logger: Logger) {
        self.logger = logger
        // The pool reports each failed connection attempt at info, several a second while
        // the server is down; the change feed says that once, as a warning.
        var background = logger
        background.logLevel = max(logger.logLevel, .warning)
        client = PostgresClient(configuration: Self.clientConfiguration(location, poolSize: poolSize), backgroundLogger: background)
        let client = self.client
        running = Task { await client.run() }
    }

    /// Closes every connection; calls after this fail.
    func close() async {
        running.cancel()
        await running.value
    }

    static func connectionConfiguration(_ location: PostgresLocation) throws -> PostgresConnection.Configuration {
        PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.user, password: location.password,
            database: location.database, tls: try connectionTLS(location))
    }

    private static func clientConfiguration(_ location: PostgresLocation, poolSize: Int) -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: location.host, port: location.port, username: location.user, password: location.password,
            database: location.database, tls: clientTLS(location))
        configuration.options.maximumConnections = poolSize
        configuration.options.minimumConnections = min(2, poolSize)
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    /// What libpq's sslmode asks: `verify-full` checks the chain (against `sslrootcert`
    /// when given) and the host name, `prefer` and `require` encrypt without checking.
    private static func tlsConfiguration(_ location: PostgresLocation) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if location.tls == .verifyFull {
            if let roots = location.rootCertificatesFile { configuration.trustRoots = .file(roots) }
        } else {
            configuration.certificateVerification = .none
        }
        return configuration
    }

    private static func clientTLS(_ location: PostgresLocation) -> PostgresClient.Configuration.TLS {
        switch location.tls {
        case .disable: .disable
        case .prefer: .prefer(tlsConfiguration(location))
        case .require, .verifyFull: .require(tlsConfiguration(location))
        }
    }

    /// The change feed's and the probe's TLS: like the pool's. A context that cannot be
    /// made (an unreadable `sslrootcert`) fails the connection rather than falling back to
    /// plain TCP.
    private static func connectionTLS(_ location: PostgresLocation) throws -> PostgresConnection.Configuration.TLS {
        guard location.tls != .disable else { return .disable }
        let context = try NIOSSLContext(configuration: tlsConfiguration(location))
        return location.tls == .prefer ? .prefer(context) : .require(context)
    }

    /// Runs `body` on a pooled connection, outside any explicit transaction (each
    /// statement sees what was committed when it started).
    func read<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try checkReachable()
        do {
            return try await client.withConnection { connection in try await body(connection) }
        } catch {
            throw Self.metadataError(error)
        }
    }

    /// Runs `body`'s queries on one snapshot (a read-only REPEATABLE READ transaction).
    func snapshot<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await read { connection in
            try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
            do {
                let result = try await body(connection)
                try await connection.query("COMMIT", logger: logger)
                return result
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    /// Runs `body` unless the answer for `key` is cached; caches it otherwise.
    func cachedRead<T: Sendable>(
        _ key: String, size: (T) -> Int = { _ in 64 }, _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        if let hit = cache.lookup(key, as: T.self) { return hit }
        let generation = cache.generation
        let value = try await read(body)
        cache.store(key, value, size: size(value), readAt: generation)
        return value
    }

    /// Runs `body` in a SERIALIZABLE transaction, again from the start when PostgreSQL
    /// could not serialize it; `body` must therefore do nothing but database work. A
    /// transaction that changes a cached table announces it on `ChangeFeed.channel` (by
    /// trigger, see migration 3), so every instance drops its cached answers once it
    /// commits; this instance's are dropped before this returns.
    ///
    /// `durable: false` commits without waiting for the WAL flush (`synchronous_commit =
    /// off`), for state nobody was promised (an upload session just opened, a pin): a
    /// crash of the database server may lose it, never anything acknowledged to a client.
    @discardableResult
    func write<T: Sendable>(durable: Bool = true, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try checkReachable()
        defer { cache.invalidate() }
        var attempt = 1
        while true {
            do {
                return try await client.withConnection { connection in
                    try await connection.query("BEGIN ISOLATION LEVEL SERIALIZABLE", logger: logger)
                    do {
                        if !durable { try await connection.query("SET LOCAL synchronous_commit = off", logger: logger) }
                        let result = try await body(connection)
                        try await connection.query("COMMIT", logger: logger)
                        return result
                    } catch {
                        _ = try? await connection.query("ROLLBACK", logger: logger)
                        throw error
                    }
                }
            } catch let error as PSQLError where error.mustRetry && attempt < Self.maximumAttempts {
                // Another transaction won the race; give it room before trying again.
                attempt += 1
                try? await Task.sleep(for: .milliseconds(Int.random(in: 1...(5 * attempt))))
            } catch let error as PSQLError {
                throw Self.metadataError(error)
            }
        }
    }

    private func checkReachable() throws {
        guard reachable.load(ordering: .relaxed) else {
            throw MetadataError.unavailable(MetadataBackendError(code: nil, underlying: PostgresUnreachable()))
        }
    }

    /// Opens one connection and closes it: fails fast (`MetadataError.unavailable`) when
    /// the server cannot be reached or refuses the login, before anything waits on the pool.
    static func probe(_ location: PostgresLocation, logger: Logger) async throws {
        let configuration: PostgresConnection.Configuration
        do {
            configuration = try connectionConfiguration(location)
        } catch {
            // Nothing to do with the server: an sslrootcert that cannot be read.
            throw MetadataError.backend(MetadataBackendError(code: nil, underlying: error))
        }
        do {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            try await connection.close()
        } catch let error as PSQLError where error.serverInfo != nil {
            // The server answered: a refused login or an unknown database, said as PostgreSQL says it.
            throw MetadataError.backend(MetadataBackendError(code: nil, underlying: PostgresFailure(error)))
        } catch {
            throw MetadataError.unavailable(
                MetadataBackendError(code: nil, underlying: (error as? PSQLError).map(PostgresFailure.init) ?? error))
        }
    }

    /// SQLSTATE classes of a server that is going away or not there yet: 57P01–57P03
    /// (shutting down, starting up), 08 (connection exceptions), 53300 (too many connections).
    private static func meansUnavailable(_ state: String) -> Bool {
        state.hasPrefix("57P") || state.hasPrefix("08") || state == "53300"
    }

    /// A failure of the database in the store's terms. Errors that are already the
    /// store's (a domain refusal thrown inside a transaction) pass unchanged.
    static func metadataError(_ error: any Error) -> any Error {
        guard let error = error as? PSQLError else { return error }
        if error.code == .serverClosedConnection || error.code == .connectionError || error.code == .poolClosed
            || error.serverInfo?[.sqlState].map(Self.meansUnavailable) == true
        {
            return MetadataError.unavailable(MetadataBackendError(code: nil, underlying: PostgresFailure(error)))
        }
        return MetadataError.backend(MetadataBackendError(code: nil, underlying: PostgresFailure(error)))
    }
}

/// The change feed has no connection to the server right now.
struct PostgresUnreachable: Error, CustomStringConvertible {
    var description: String { "PostgreSQL does not answer (the change feed is reconnecting)" }
}

/// What PostgreSQL said, without the query's bound values (they may hold password hashes).
struct PostgresFailure: Error, CustomStringConvertible {
    let sqlState: String?
    let message: String

    init(_ error: PSQLError) {
        sqlState = error.serverInfo?[.sqlState]
        // PSQLError's own description hides everything (it may carry the query's values);
        // the server's message and the connection's failure carry none.
        message = error.serverInfo?[.message] ?? "\(error.code)\(error.underlying.map { ": \($0)" } ?? "")"
    }

    var description: String { "PostgreSQL \(sqlState ?? "-"): \(message)" }
}

extension PSQLError {
    /// SERIALIZABLE's "could not serialize access" (40001) and a deadlock (40P01): the
    /// transaction was rolled back and may simply run again.
    var mustRetry: Bool {
        guard let state = serverInfo?[.sqlState] else { return false }
        return state == "40001" || state == "40P01"
    }
}

extension PostgresConnection {
    /// Every row of `query`, each turned into a value by `row`.
    func rows<T>(_ query: PostgresQuery, _ row: (PostgresRow) throws -> T) async throws -> [T] {
        var values: [T] = []
        for try await each in try await self.query(query, logger: logger) { values.append(try row(each)) }
        return values
    }

    /// The first row of `query` turned into a value, or `nil` when there is none.
    func first<T>(_ query: PostgresQuery, _ row: (PostgresRow) throws -> T) async throws -> T? {
        try await rows(query, row).first
    }

    /// Runs a statement; with `RETURNING 1` the count is the number of rows it changed.
    @discardableResult
    func run(_ query: PostgresQuery) async throws -> Int {
        try await rows(query) { _ in () }.count
    }
}
