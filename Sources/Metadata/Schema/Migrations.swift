/// Versioned schema migrations. Each entry runs once, in order, inside a transaction,
/// and is recorded in `schema_migrations`; released migrations are never edited,
/// only followed by new ones.
enum Migrations {
    static let all: [(version: Int, sql: String)] = [
        (
            1,
            """
            CREATE TABLE repositories (
                id          INTEGER PRIMARY KEY,
                name        TEXT NOT NULL UNIQUE,
                is_public   INTEGER NOT NULL DEFAULT 0,
                created_at  INTEGER NOT NULL
            );
            -- One row per stored blob: the bytes under blobs/<algorithm>/… are verified.
            CREATE TABLE blobs (
                digest      TEXT PRIMARY KEY,
                size        INTEGER NOT NULL,
                created_at  INTEGER NOT NULL
            ) WITHOUT ROWID;
            -- A blob is visible in a repository only through a link (pushed or mounted there).
            CREATE TABLE repository_blobs (
                repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
                digest        TEXT NOT NULL REFERENCES blobs(digest),
                created_at    INTEGER NOT NULL,
                PRIMARY KEY (repository_id, digest)
            ) WITHOUT ROWID;
            CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest);
            -- Manifests are small (≤ 4 MiB) and kept byte-exact here.
            CREATE TABLE manifests (
                id             INTEGER PRIMARY KEY,
                repository_id  INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
                digest         TEXT NOT NULL,
                media_type     TEXT NOT NULL,
                artifact_type  TEXT,
                subject_digest TEXT,
                annotations    TEXT,
                content        BLOB NOT NULL,
                created_at     INTEGER NOT NULL,
                UNIQUE (repository_id, digest)
            );
            CREATE INDEX manifests_by_subject ON manifests(repository_id, subject_digest) WHERE subject_digest IS NOT NULL;
            -- What a manifest points at: kind is 'config', 'layer', 'manifest' or 'subject'.
            CREATE TABLE manifest_references (
                manifest_id INTEGER NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
                kind        TEXT NOT NULL,
                digest      TEXT NOT NULL,
                PRIMARY KEY (manifest_id, kind, digest)
            ) WITHOUT ROWID;
            CREATE INDEX manifest_references_by_digest ON manifest_references(digest);
            CREATE TABLE tags (
                repository_id   INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
                name            TEXT NOT NULL,
                manifest_digest TEXT NOT NULL,
                updated_at      INTEGER NOT NULL,
                PRIMARY KEY (repository_id, name)
            ) WITHOUT ROWID;
            -- Every tag move: who, when, from what to what (NULL old = created, NULL new = deleted).
            CREATE TABLE tag_history (
                id            INTEGER PRIMARY KEY,
                repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
                tag           TEXT NOT NULL,
                old_digest    TEXT,
                new_digest    TEXT,
                actor         TEXT,
                at            INTEGER NOT NULL
            );
            CREATE INDEX tag_history_by_tag ON tag_history(repository_id, tag);
            CREATE TABLE upload_sessions (
                id               TEXT PRIMARY KEY,
                repository_id    INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
                principal        TEXT,
                digest_algorithm TEXT NOT NULL,
                size             INTEGER NOT NULL DEFAULT 0,
                created_at       INTEGER NOT NULL,
                updated_at       INTEGER NOT NULL
            ) WITHOUT ROWID;
            """
        ),
        (
            2,
            """
            -- Accounts: created only through the control socket (never by self-service).
            CREATE TABLE users (
                id            INTEGER PRIMARY KEY,
                name          TEXT NOT NULL UNIQUE,
                password_hash TEXT NOT NULL,
                is_staff      INTEGER NOT NULL DEFAULT 0,
                is_disabled   INTEGER NOT NULL DEFAULT 0,
                created_at    INTEGER NOT NULL,
                updated_at    INTEGER NOT NULL
            );
            -- A namespace is the first path segment of repository names.
            CREATE TABLE namespaces (
                id         INTEGER PRIMARY KEY,
                name       TEXT NOT NULL UNIQUE,
                created_at INTEGER NOT NULL
            );
            -- role: 'owner', 'collaborator' or 'consumer'.
            CREATE TABLE namespace_members (
                namespace_id INTEGER NOT NULL REFERENCES namespaces(id) ON DELETE CASCADE,
                user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                role         TEXT NOT NULL,
                PRIMARY KEY (namespace_id, user_id)
            ) WITHOUT ROWID;
            CREATE INDEX namespace_members_by_user ON namespace_members(user_id);
            """
        ),
        (
            3,
            """
            -- Every change made through the control socket: who (peer credentials), what, when.
            CREATE TABLE audit_log (
                id     INTEGER PRIMARY KEY,
                at     INTEGER NOT NULL,
                actor  TEXT NOT NULL,
                method TEXT NOT NULL,
                params TEXT
            );
            """
        ),
        (
            4,
            """
            -- Online garbage collection. An upload pins a blob before it moves the bytes into
            -- place and unpins it when it links them; a collection marks a blob `deleting`
            -- only when it is unpinned, unlinked and unreferenced, deletes the bytes, then the
            -- row. While a blob is `deleting` nobody pins or links it.
            ALTER TABLE blobs ADD COLUMN pins INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE blobs ADD COLUMN pinned_at INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE blobs ADD COLUMN deleting INTEGER NOT NULL DEFAULT 0;
            """
        ),
        (
            5,
            """
            -- The ages a collection compares are kept in milliseconds: in whole seconds, a
            -- collection with grace 0 in the same second as a delete found nothing old enough.
            ALTER TABLE blobs RENAME COLUMN created_at TO created_at_ms;
            UPDATE blobs SET created_at_ms = created_at_ms * 1000;
            ALTER TABLE repository_blobs RENAME COLUMN created_at TO created_at_ms;
            UPDATE repository_blobs SET created_at_ms = created_at_ms * 1000;
            ALTER TABLE manifests RENAME COLUMN created_at TO created_at_ms;
            UPDATE manifests SET created_at_ms = created_at_ms * 1000;
            -- A pin has an owner: the upload that took it, on the registryd instance that runs
            -- that upload. An instance renews its lease while it lives and releases its own
            -- pins when it starts, so a pin left by a killed process stops protecting its
            -- blob, and instances sharing one database release only their own. The counter
            -- of migration 4 could not tell whose pin was whose; pins do not outlive the
            -- process that held them, so there is nothing to carry over.
            ALTER TABLE blobs DROP COLUMN pins;
            ALTER TABLE blobs DROP COLUMN pinned_at;
            CREATE TABLE instances (
                id                  TEXT PRIMARY KEY,
                started_at_ms       INTEGER NOT NULL,
                lease_expires_at_ms INTEGER NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE blob_pins (
                upload_id    TEXT PRIMARY KEY,
                digest       TEXT NOT NULL,
                instance     TEXT NOT NULL,
                pinned_at_ms INTEGER NOT NULL
            ) WITHOUT ROWID;
            CREATE INDEX blob_pins_by_digest ON blob_pins(digest);
            CREATE INDEX blob_pins_by_instance ON blob_pins(instance);
            """
        ),
        (
            6,
            """
            -- Tag history and the audit log are kept for a retention period and pruned by age
            -- (see HistoryPruner); by time, the pruning reads only the rows it removes.
            CREATE INDEX tag_history_by_time ON tag_history(at);
            CREATE INDEX audit_log_by_time ON audit_log(at);
            -- Each start finishes deletions a killed collection left marked (see
            -- InterruptedDeletions): found through this index, not by reading every blob row.
            CREATE INDEX blobs_being_deleted ON blobs(digest) WHERE deleting = 1;
            """
        ),
        (
            7,
            """
            -- What `registryctl status` shows of each instance, written with every lease
            -- renewal (the heartbeat); the PostgreSQL schema has the same columns.
            ALTER TABLE instances ADD COLUMN host TEXT NOT NULL DEFAULT '';
            ALTER TABLE instances ADD COLUMN pid INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE instances ADD COLUMN version TEXT NOT NULL DEFAULT '';
            ALTER TABLE instances ADD COLUMN renewed_at_ms INTEGER NOT NULL DEFAULT 0;
            """
        ),
    ]

    static func apply(to connection: SQLiteConnection) throws {
        try connection.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
        let applied = Set(try connection.rows("SELECT version FROM schema_migrations") { Int($0.integer(0)) })
        if let newest = applied.max(), newest > latestVersion {
            throw MetadataError.newerSchema(found: newest, known: latestVersion)
        }
        for migration in all where !applied.contains(migration.version) {
            try connection.transaction {
                try connection.execute(migration.sql)
                try connection.query(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    [.integer(Int64(migration.version)), .integer(UnixTime.seconds())])
            }
        }
    }

    /// The newest schema version this build knows.
    static var latestVersion: Int { all.map(\.version).max() ?? 0 }
}
