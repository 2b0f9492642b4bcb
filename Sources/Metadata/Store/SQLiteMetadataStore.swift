import OCI
import Synchronization

/// `MetadataStore` on a SQLite file in WAL mode.
///
/// ```swift
/// let metadata = try SQLiteMetadataStore(path: dataDir + "/registry.db", instance: "registry-1")
/// ```
///
/// Opening the store applies pending schema migrations.
public final class SQLiteMetadataStore: MetadataBackend {
    let database: SQLiteDatabase
    /// See `AccountStore.accountGeneration`.
    let accountChanges = Atomic<Int>(0)

    /// The registryd instance this store speaks for (see `InstanceLease`).
    public let instance: String
    /// The database file.
    public let path: String

    /// Opens (and migrates) the database, starts `instance`'s lease and releases the
    /// pins that instance held before (see `InstanceLease`).
    /// How long this instance's lease lasts without renewal (`InstanceLease.duration`;
    /// shorter only in tests).
    let leaseDuration: Duration

    /// What the heartbeat says of this process.
    let description: InstanceDescription

    public init(
        path: String, instance: String = "local", leaseDuration: Duration = InstanceLease.duration,
        description: InstanceDescription = .current(version: "")
    ) throws {
        let database: SQLiteDatabase
        do {
            database = try SQLiteDatabase(path: path)
        } catch let error as SQLiteError {
            // Opening and migrating fail as every other call does: SQLite's error as the cause.
            throw MetadataError(error)
        }
        self.database = database
        self.path = path
        self.instance = instance
        self.leaseDuration = leaseDuration
        self.description = description
        releasedPinsAtStart = try Self.startInstance(instance, description: description, leaseDuration: leaseDuration, in: database)
    }

    /// Blobs pinned by uploads of an earlier process of this instance, whose pins were
    /// released when the store opened (see `InterruptedUploads`).
    public let releasedPinsAtStart: [Digest]

    /// Takes the space reserve again once the disk has room, after a write that frees
    /// space used it (see `SpaceReserve`). Cheap: one `statvfs` when it is missing.
    public func restoreSpaceReserve() {
        database.reserve.restoreIfRoom()
    }

    /// Whether the space reserve is held (false on a disk too full or after it was used).
    public var holdsSpaceReserve: Bool { database.reserve.isHeld }

    /// The newest migration recorded in the file.
    public func schemaVersion() async throws -> Int {
        try database.read { try $0.first("SELECT max(version) FROM schema_migrations") { Int($0.integer(0)) } ?? 0 }
    }

    public var backendDescription: String { "SQLite \(path)" }

    /// Nothing runs in the background; the connections close with the store.
    public func close() async {}

    /// The newest migration this build knows.
    public static var latestSchemaVersion: Int { Migrations.latestVersion }
}

extension SQLiteConnection {
    /// The id of a repository, creating its row on first use.
    func ensureRepository(_ name: RepositoryName) throws -> Int64 {
        let sql = """
            INSERT INTO repositories (name, created_at) VALUES (?, ?)
            ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id
            """
        guard let id = try first(sql, [.text(name.value), .integer(UnixTime.seconds())], { $0.integer(0) }) else {
            throw SQLiteError(code: 0, message: "repository insert returned no id")
        }
        return id
    }

    func repositoryID(_ name: RepositoryName) throws -> Int64? {
        try first("SELECT id FROM repositories WHERE name = ?", [.text(name.value)]) { $0.integer(0) }
    }
}
