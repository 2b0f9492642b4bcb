import Logging
import PostgresNIO

/// The PostgreSQL schema, in versioned migrations recorded in `schema_migrations`:
/// each runs once, in order, in a transaction; released migrations are never edited.
///
/// It holds the same facts as the SQLite schema (`Migrations`), written for PostgreSQL:
/// BIGINT identities, BOOLEAN flags, BYTEA for manifest bytes. Version 1 is the SQLite
/// schema as of its version 6; later versions follow their own numbering.
///
/// Instances that start together migrate once: the whole run holds a session-level
/// advisory lock, so the second waits, then finds nothing left to do. A database that a
/// newer registryd migrated further refuses this build (`MetadataError.newerSchema`).
enum PostgresMigrations {
    /// The advisory lock key of migrations ("registryd" in ASCII, folded into 63 bits).
    static let lockKey: Int64 = 0x7265_6769_7374_7279

    static let all: [(version: Int, sql: [String])] = [
        (
            1,
            [
                """
                CREATE TABLE repositories (
                    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    name        TEXT NOT NULL UNIQUE,
                    is_public   BOOLEAN NOT NULL DEFAULT false,
                    created_at  BIGINT NOT NULL
                )
                """,
                // A blob's bytes are stored and verified; `deleting` while a collection removes them.
                """
                CREATE TABLE blobs (
                    digest        TEXT PRIMARY KEY,
                    size          BIGINT NOT NULL,
                    created_at_ms BIGINT NOT NULL,
                    deleting      BOOLEAN NOT NULL DEFAULT false
                )
                """,
                "CREATE INDEX blobs_being_deleted ON blobs(digest) WHERE deleting",
                // A blob is visible in a repository only through a link (pushed or mounted there).
                """
                CREATE TABLE repository_blobs (
                    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
                    digest        TEXT NOT NULL REFERENCES blobs(digest),
                    created_at_ms BIGINT NOT NULL,
                    PRIMARY KEY (repository_id, digest)
                )
                """,
                "CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest)",
                """
                CREATE TABLE manifests (
                    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    repository_id  BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
                    digest         TEXT NOT NULL,
                    media_type     TEXT NOT NULL,
                    artifact_type  TEXT,
                    subject_digest TEXT,
                    annotations    TEXT,
                    content        BYTEA NOT NULL,
                    created_at_ms  BIGINT NOT NULL,
                    UNIQUE (repository_id, digest)
                )
                """,
                "CREATE INDEX manifests_by_subject ON manifests(repository_id, subject_digest) WHERE subject_digest IS NOT NULL",
                // kind: 'blob', 'foreign', 'manifest' or 'subject'.
                """
                CREATE TABLE manifest_references (
                    manifest_id BIGINT NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
                    kind        TEXT NOT NULL,
                    digest      TEXT NOT NULL,
                    PRIMARY KEY (manifest_id, kind, digest)
                )
                """,
                "CREATE INDEX manifest_references_by_digest ON manifest_references(digest)",
                """
                CREATE TABLE tags (
                    repository_id   BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
                    name            TEXT NOT NULL,
                    manifest_digest TEXT NOT NULL,
                    updated_at      BIGINT NOT NULL,
                    PRIMARY KEY (repository_id, name)
                )
                """,
                "CREATE INDEX tags_by_manifest ON tags(repository_id, manifest_digest)",
                """
                CREATE TABLE tag_history (
                    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
                    tag           TEXT NOT NULL,
                    old_digest    TEXT,
                    new_digest    TEXT,
                    actor         TEXT,
                    at            BIGINT NOT NULL
                )
                """,
                "CREATE INDEX tag_history_by_tag ON tag_history(repository_id, tag)",
                "CREATE INDEX tag_history_by_time ON tag_history(at)",
                """
                CREATE TABLE upload_sessions (
                    id               TEXT PRIMARY KEY,
                    repository_id    BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
                    principal        TEXT,
                    digest_algorithm TEXT NOT NULL,
                    size             BIGINT NOT NULL DEFAULT 0,
                    created_at       BIGINT NOT NULL,
                    updated_at       BIGINT NOT NULL
                )
                """,
                "CREATE INDEX upload_sessions_by_principal ON upload_sessions(principal)",
                """
                CREATE TABLE users (
                    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    name          TEXT NOT NULL UNIQUE,
                    password_hash TEXT NOT NULL,
                    is_staff      BOOLEAN NOT NULL DEFAULT false,
                    is_disabled   BOOLEAN NOT NULL DEFAULT false,
                    created_at    BIGINT NOT NULL,
                    updated_at    BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE namespaces (
                    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    name       TEXT NOT NULL UNIQUE,
                    created_at BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE namespace_members (
                    namespace_id BIGINT NOT NULL REFERENCES namespaces(id) ON DELETE CASCADE,
                    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    role         TEXT NOT NULL,
                    PRIMARY KEY (namespace_id, user_id)
                )
                """,
                "CREATE INDEX namespace_members_by_user ON namespace_members(user_id)",
                """
                CREATE TABLE audit_log (
                    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    at     BIGINT NOT NULL,
                    actor  TEXT NOT NULL,
                    method TEXT NOT NULL,
                    params TEXT
                )
                """,
                "CREATE INDEX audit_log_by_time ON audit_log(at)",
                // Instances and the pins their uploads hold (see InstanceLease).
                """
                CREATE TABLE instances (
                    id                  TEXT PRIMARY KEY,
                    started_at_ms       BIGINT NOT NULL,
                    lease_expires_at_ms BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE blob_pins (
                    upload_id    TEXT PRIMARY KEY,
                    digest       TEXT NOT NULL,
                    instance     TEXT NOT NULL,
                    pinned_at_ms BIGINT NOT NULL
                )
                """,
                "CREATE INDEX blob_pins_by_digest ON blob_pins(digest)",
                "CREATE INDEX blob_pins_by_instance ON blob_pins(instance)",
            ]
        ),
        (
            2,
            [
                // What `registryctl status` shows of each instance, written with every lease
                // renewal (the heartbeat).
                "ALTER TABLE instances ADD COLUMN host TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE instances ADD COLUMN pid BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE instances ADD COLUMN version TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE instances ADD COLUMN renewed_at_ms BIGINT NOT NULL DEFAULT 0",
                // Which instance took the collection lock last (it counts while the lock is held).
                """
                CREATE TABLE collection_claims (
                    id            INTEGER PRIMARY KEY CHECK (id = 1),
                    instance      TEXT NOT NULL,
                    started_at_ms BIGINT NOT NULL
                )
                """,
            ]
        ),
        (
            3,
            [
                // Every statement that changes a table whose answers instances cache
                // announces the table on the change feed's channel, from the writing
                // transaction (delivered once it commits; PostgreSQL folds repeats within a
                // transaction into one). Upload sessions, pins, heartbeats, the audit log and
                // the tag history are nobody's cache and stay quiet.
                """
                CREATE FUNCTION registryd_announce_change() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM pg_notify('registryd_changes', TG_TABLE_NAME);
                    RETURN NULL;
                END
                $$
                """
            ]
                // Written out, not taken from elsewhere: a migration never changes once released.
                + [
                    "repositories", "blobs", "repository_blobs", "manifests", "manifest_references", "tags", "users", "namespaces",
                    "namespace_members",
                ].map { table in
                    """
                    CREATE TRIGGER announce_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON \(table)
                    FOR EACH STATEMENT EXECUTE FUNCTION registryd_announce_change()
                    """
                }
        ),
    ]

    static var latestVersion: Int { all.map(\.version).max() ?? 0 }

    /// Brings the database to `target` (default: the newest this build knows) under the
    /// migration lock. - Returns: the versions it applied.
    @discardableResult
    static func apply(to client: PostgresClient, upTo target: Int = latestVersion, logger: Logger) async throws -> [Int] {
        try await client.withConnection { connection in
            // Session-level: held across the migrations' own transactions, released below
            // or, if this process dies, when its connection closes.
            try await connection.query("SELECT pg_advisory_lock(\(lockKey))", logger: logger)
            do {
                let applied = try await migrate(connection, upTo: target, logger: logger)
                try await connection.query("SELECT pg_advisory_unlock(\(lockKey))", logger: logger)
                return applied
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(lockKey))", logger: logger)
                throw error
            }
        }
    }

    private static func migrate(_ connection: PostgresConnection, upTo target: Int, logger: Logger) async throws -> [Int] {
        try await connection.query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)", logger: logger)
        let recorded = Set(try await connection.rows("SELECT version FROM schema_migrations") { Int(try $0.decode(Int64.self)) })
        if let newest = recorded.max(), newest > latestVersion {
            throw MetadataError.newerSchema(found: newest, known: latestVersion)
        }
        var applied: [Int] = []
        for migration in all where migration.version <= target && !recorded.contains(migration.version) {
            try await connection.query("BEGIN", logger: logger)
            do {
                for statement in migration.sql {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (\(Int64(migration.version)), \(UnixTime.seconds()))",
                    logger: logger)
                try await connection.query("COMMIT", logger: logger)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
            applied.append(migration.version)
        }
        return applied
    }
}
