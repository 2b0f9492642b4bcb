import OCI
import Synchronization

/// `MetadataStore` on a SQLite file in WAL mode.
///
/// ```swift
/// let metadata = try SQLiteMetadataStore(path: dataDir + "/registry.db")
/// ```
///
/// Opening the store applies pending schema migrations.
public final class SQLiteMetadataStore: MetadataStore {
    let database: SQLiteDatabase
    /// See `AccountStore.accountGeneration`.
    let accountChanges = Atomic<Int>(0)

    public init(path: String) throws {
        self.database = try SQLiteDatabase(path: path)
    }

    /// The newest migration recorded in the file.
    public func schemaVersion() throws -> Int {
        try database.read { try $0.first("SELECT max(version) FROM schema_migrations") { Int($0.integer(0)) } ?? 0 }
    }

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
        guard let id = try first(sql, [.text(name.value), .integer(Clock.now())], { $0.integer(0) }) else {
            throw SQLiteError(code: 0, message: "repository insert returned no id")
        }
        return id
    }

    func repositoryID(_ name: RepositoryName) throws -> Int64? {
        try first("SELECT id FROM repositories WHERE name = ?", [.text(name.value)]) { $0.integer(0) }
    }
}
