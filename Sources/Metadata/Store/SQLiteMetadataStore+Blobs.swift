import OCI

extension SQLiteMetadataStore {
    /// The size of a blob visible in a repository: arguments (repository name, digest).
    private static let visibleBlobSize = """
        SELECT b.size FROM repository_blobs rb
        JOIN repositories r ON r.id = rb.repository_id
        JOIN blobs b ON b.digest = rb.digest
        WHERE r.name = ? AND rb.digest = ?
        """

    public func blobSize(_ digest: Digest, in repository: RepositoryName) async throws -> Int64? {
        try database.cachedRead(HotReadKey.blob(digest, repository)) {
            try $0.first(Self.visibleBlobSize, [.text(repository.value), .text(digest.description)]) { $0.integer(0) }
        }
    }

    public func linkBlob(_ digest: Digest, size: Int64, to repository: RepositoryName, completing upload: UploadID?) async throws {
        try await database.write { connection in
            let now = UnixTime.milliseconds()
            let repositoryID = try connection.ensureRepository(repository)
            try connection.query(
                "INSERT INTO blobs (digest, size, created_at_ms) VALUES (?, ?, ?) ON CONFLICT (digest) DO NOTHING",
                [.text(digest.description), .integer(size), .integer(now)])
            if try connection.first("SELECT deleting FROM blobs WHERE digest = ?", [.text(digest.description)], { $0.integer(0) != 0 })
                == true
            {
                // Only reachable without a pin: a pinned blob is never marked for deletion.
                throw MetadataError.blobBeingDeleted(digest)
            }
            try connection.query(
                "INSERT INTO repository_blobs (repository_id, digest, created_at_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [.integer(repositoryID), .text(digest.description), .integer(now)])
            if let upload {
                try connection.query("DELETE FROM blob_pins WHERE upload_id = ?", [.text(upload.value)])
                try connection.query("DELETE FROM upload_sessions WHERE id = ?", [.text(upload.value)])
            }
        }
    }

    public func mountBlob(_ digest: Digest, from source: RepositoryName, to target: RepositoryName) async throws -> Int64? {
        try await database.write { connection in
            guard
                let size = try connection.first(Self.visibleBlobSize, [.text(source.value), .text(digest.description)], { $0.integer(0) })
            else {
                return nil
            }
            let targetID = try connection.ensureRepository(target)
            try connection.query(
                "INSERT INTO repository_blobs (repository_id, digest, created_at_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [.integer(targetID), .text(digest.description), .integer(UnixTime.milliseconds())])
            return size
        }
    }

    public func repositoriesLinking(_ digest: Digest, limit: Int) async throws -> [RepositoryName] {
        let sql = """
            SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
            WHERE rb.digest = ? ORDER BY r.name LIMIT ?
            """
        return try database.read { connection in
            try connection.rows(sql, [.text(digest.description), .integer(Int64(limit))]) { try RepositoryName(parsing: $0.text(0)) }
        }
    }

    public func unlinkBlob(_ digest: Digest, from repository: RepositoryName) async throws -> Bool {
        let sql = """
            DELETE FROM repository_blobs
            WHERE digest = ? AND repository_id = (SELECT id FROM repositories WHERE name = ?)
            """
        return try await database.write(freesSpace: true) { connection in
            try connection.query(sql, [.text(digest.description), .text(repository.value)])
            return connection.changes > 0
        }
    }
}
