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
            try await connection.query(
                "INSERT INTO blobs (digest, size, created_at_ms) VALUES (\(digest.description), \(size), \(now)) ON CONFLICT (digest) DO NOTHING",
                logger: connection.logger)
            if try await connection.first("SELECT deleting FROM blobs WHERE digest = \(digest.description)", { try $0.decode(Bool.self) })
                == true
            {
                // Only reachable without a pin: a pinned blob is never marked for deletion.
                throw MetadataError.blobBeingDeleted(digest)
            }
            try await connection.query(
                """
                INSERT INTO repository_blobs (repository_id, digest, created_at_ms) VALUES (\(repositoryID), \(digest.description), \(now))
                ON CONFLICT DO NOTHING
                """, logger: connection.logger)
            if let upload {
                try await connection.query("DELETE FROM blob_pins WHERE upload_id = \(upload.value)", logger: connection.logger)
                try await connection.query("DELETE FROM upload_sessions WHERE id = \(upload.value)", logger: connection.logger)
            }
        }
    }

    public func mountBlob(_ digest: Digest, from source: RepositoryName, to target: RepositoryName) async throws -> Int64? {
        try await database.write { connection in
            guard let size = try await connection.visibleBlobSize(digest, in: source) else { return nil }
            let targetID = try await connection.ensureRepository(target)
            try await connection.query(
                """
                INSERT INTO repository_blobs (repository_id, digest, created_at_ms) VALUES (\(targetID), \(digest.description), \(UnixTime.milliseconds()))
                ON CONFLICT DO NOTHING
                """, logger: connection.logger)
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
        try await first(
            """
            SELECT b.size FROM repository_blobs rb
            JOIN repositories r ON r.id = rb.repository_id
            JOIN blobs b ON b.digest = rb.digest
            WHERE r.name = \(repository.value) AND rb.digest = \(digest.description)
            """
        ) { try $0.decode(Int64.self) }
    }
}
