import OCI
import PostgresNIO

extension PostgresMetadataStore {
    public func blobSize(_ digest: Digest, in repository: RepositoryName) async throws -> Int64? {
        try await database.cachedRead(HotReadKey.blob(digest, repository)) { connection in
            try await connection.visibleBlobSize(digest, in: repository)
        }
    }

    public func linkBlob(_ digest: Digest, size: Int64, to repository: RepositoryName, completing upload: UploadID?) async throws {
        try await database.write { connection in
            let now = UnixTime.milliseconds()
            let repositoryID = try await connection.ensureRepository(repository)
            if try await connection.addBlob(digest, size: size, at: now) {
                // Only reachable without a pin: a pinned blob is never marked for deletion.
                throw MetadataError.blobBeingDeleted(digest)
            }
            try await connection.run(LinkBlob.self, repositoryID, digest.description, now)
            if let upload {
                try await connection.run(FinishUpload.self, upload.value)
            }
        }
    }

    enum LinkBlob: HotStatement {
        static let sql = "INSERT INTO repository_blobs (repository_id, digest, created_at_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
    }

    /// An upload's session and its pin, gone together.
    enum FinishUpload: HotStatement {
        static let sql = """
            WITH unpinned AS (DELETE FROM blob_pins WHERE upload_id = $1)
            DELETE FROM upload_sessions WHERE id = $1
            """
    }

    public func mountBlob(_ digest: Digest, from source: RepositoryName, to target: RepositoryName) async throws -> Int64? {
        try await database.write { connection in
            guard let size = try await connection.visibleBlobSize(digest, in: source) else { return nil }
            let targetID = try await connection.ensureRepository(target)
            try await connection.run(LinkBlob.self, targetID, digest.description, UnixTime.milliseconds())
            return size
        }
    }

    public func repositoriesLinking(_ digest: Digest, limit: Int) async throws -> [RepositoryName] {
        try await database.read { connection in
            try await connection.rows(
                """
                SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
                WHERE rb.digest = \(digest.description) ORDER BY r.name LIMIT \(limit)
                """
            ) { try RepositoryName(parsing: $0.decode(String.self)) }
        }
    }

    public func unlinkBlob(_ digest: Digest, from repository: RepositoryName) async throws -> Bool {
        try await database.write { connection in
            try await connection.run(
                """
                DELETE FROM repository_blobs
                WHERE digest = \(digest.description) AND repository_id = (SELECT id FROM repositories WHERE name = \(repository.value))
                RETURNING 1
                """) > 0
        }
    }
}

extension PostgresConnection {
    /// The size of a blob visible in a repository, or `nil`.
    func visibleBlobSize(_ digest: Digest, in repository: RepositoryName) async throws -> Int64? {
        try await first(VisibleBlobSize.self, repository.value, digest.description) { try $0.decode(Int64.self) }
    }

    private enum VisibleBlobSize: HotStatement {
        static let sql = """
            SELECT b.size FROM repository_blobs rb
            JOIN repositories r ON r.id = rb.repository_id
            JOIN blobs b ON b.digest = rb.digest
            WHERE r.name = $1 AND rb.digest = $2
            """
    }

    /// Records a blob unless its row exists. - Returns: whether the row is marked for
    /// deletion (never a new one).
    func addBlob(_ digest: Digest, size: Int64, at now: Int64) async throws -> Bool {
        try await first(AddBlob.self, digest.description, size, now) { try $0.decode(Bool.self) } ?? false
    }

    /// One round trip for "insert unless present, then tell me its `deleting`": the
    /// outer SELECT reads the snapshot from before the INSERT, so exactly one of the two
    /// halves has the row.
    private enum AddBlob: HotStatement {
        static let sql = """
            WITH added AS (INSERT INTO blobs (digest, size, created_at_ms) VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING RETURNING deleting)
            SELECT deleting FROM added UNION ALL SELECT deleting FROM blobs WHERE digest = $1
            """
    }
}
