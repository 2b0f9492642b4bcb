import Logging
import OCI
import PostgresNIO
import Synchronization

/// `MetadataBackend` on a PostgreSQL database that several registryd instances share.
///
/// ```swift
/// let location = try PostgresLocation(parsing: "postgres://registryd@db.internal:5432/registry")
///     .withPassword(configured: nil, environment: ["PGPASSWORD": password])
/// let metadata = try await PostgresMetadataStore(location: location, instance: "registry-1", logger: logger)
/// ```
///
/// Opening the store applies pending migrations (once, however many instances start
/// together), starts the instance's lease and releases the pins its previous process
/// held, and starts the `ChangeFeed` that keeps the cached answers in step with the
/// writes of every instance.
public final class PostgresMetadataStore: MetadataBackend {
    let database: PostgresDatabase
    private let changes: ChangeFeed
    /// See `AccountStore.accountGeneration`: grows with this instance's account changes
    /// and with every change another instance announces (and every cache drop).
    let accountChanges = ChangeCounter()
    public let instance: String
    public let location: PostgresLocation
    let leaseDuration: Duration
    let description: InstanceDescription
    public let releasedPinsAtStart: [Digest]

    /// - Parameters:
    ///   - poolSize: most connections this instance opens (PostgreSQL's `max_connections`
    ///     must allow every instance's pool, plus one listening connection each).
    public init(
        location: PostgresLocation, instance: String, poolSize: Int = 16, leaseDuration: Duration = InstanceLease.duration,
        description: InstanceDescription = .current(version: ""),
        logger: Logger = Logger(label: "registryd.metadata")
    ) async throws {
        try await PostgresDatabase.probe(location, logger: logger)
        let database = PostgresDatabase(location: location, poolSize: poolSize, logger: logger)
        do {
            try await PostgresMigrations.apply(to: database.client, logger: logger)
            releasedPinsAtStart = try await Self.startInstance(
                instance, description: description, leaseDuration: leaseDuration, in: database)
        } catch {
            await database.close()
            throw PostgresDatabase.metadataError(error)
        }
        self.database = database
        self.instance = instance
        self.location = location
        self.leaseDuration = leaseDuration
        self.description = description
        let cache = database.cache
        let accountChanges = self.accountChanges
        changes = ChangeFeed(
            configuration: try PostgresDatabase.connectionConfiguration(location), logger: logger,
            reachable: { [database] in database.reachable.store($0, ordering: .relaxed) }
        ) { change in
            cache.invalidate()
            if change.touchesAccounts { accountChanges.bump() }
        }
    }

    public func close() async {
        changes.stop()
        await database.close()
    }

    public var backendDescription: String { "PostgreSQL \(location)" }

    public func schemaVersion() async throws -> Int {
        try await database.read { connection in
            try await connection.first("SELECT coalesce(max(version), 0) FROM schema_migrations") { Int(try $0.decode(Int64.self)) } ?? 0
        }
    }

    public static var latestSchemaVersion: Int { PostgresMigrations.latestVersion }
}

extension PostgresConnection {
    /// The id of a repository, creating its row on first use. Reads first: an upsert would
    /// write the row of every push to the repository, and concurrent SERIALIZABLE writers
    /// of one row fail each other.
    func ensureRepository(_ name: RepositoryName) async throws -> Int64 {
        if let id = try await repositoryID(name) { return id }
        let insert: PostgresQuery = """
            INSERT INTO repositories (name, created_at) VALUES (\(name.value), \(UnixTime.seconds()))
            ON CONFLICT (name) DO NOTHING RETURNING id
            """
        // No row back: another transaction created it since (its commit makes ours retry).
        if let id = try await first(insert, { try $0.decode(Int64.self) }) { return id }
        guard let id = try await repositoryID(name) else {
            throw MetadataError.damagedRow("repository \(name.value) could not be created")
        }
        return id
    }

    func repositoryID(_ name: RepositoryName) async throws -> Int64? {
        try await first(RepositoryID.self, name.value) { try $0.decode(Int64.self) }
    }

    private enum RepositoryID: HotStatement {
        static let sql = "SELECT id FROM repositories WHERE name = $1"
    }
}

/// A counter shared with the change feed's task (an `Atomic` alone cannot be captured).
final class ChangeCounter: Sendable {
    private let count = Atomic<Int>(0)

    var value: Int { count.load(ordering: .acquiring) }

    func bump() { count.add(1, ordering: .releasing) }
}
