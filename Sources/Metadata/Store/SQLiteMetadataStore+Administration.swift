import OCI

extension SQLiteMetadataStore {
    public func repositorySummary(_ name: RepositoryName) async throws -> RepositorySummary? {
        try database.read { connection in
            guard
                let (id, isPublic, createdAt) = try connection.first(
                    "SELECT id, is_public, created_at FROM repositories WHERE name = ?", [.text(name.value)],
                    { ($0.integer(0), $0.integer(1) != 0, $0.integer(2)) })
            else { return nil }
            let tags = try connection.rows("SELECT name, manifest_digest FROM tags WHERE repository_id = ? ORDER BY name", [.integer(id)]) {
                (tag: $0.text(0), digest: $0.text(1))
            }
            let manifests = try connection.rows(
                "SELECT digest, media_type, length(content), created_at_ms / 1000 FROM manifests WHERE repository_id = ? ORDER BY created_at_ms, id",
                [.integer(id)]
            ) {
                (digest: $0.text(0), mediaType: $0.text(1), size: $0.integer(2), createdAt: $0.integer(3))
            }
            let (count, bytes) =
                try connection.first(
                    """
                    SELECT count(*), coalesce(sum(b.size), 0) FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.repository_id = ?
                    """, [.integer(id)]
                ) { (Int($0.integer(0)), $0.integer(1)) } ?? (0, 0)
            return RepositorySummary(
                name: name.value, isPublic: isPublic, createdAt: createdAt, tags: tags, manifests: manifests, blobBytes: bytes,
                blobCount: count)
        }
    }

    public func deleteRepository(_ name: RepositoryName) async throws -> [UploadID]? {
        try await database.write(freesSpace: true) { connection in
            guard let id = try connection.repositoryID(name) else { return nil }
            let uploads = try connection.rows("SELECT id FROM upload_sessions WHERE repository_id = ?", [.integer(id)]) {
                try UploadID(parsing: $0.text(0))
            }
            // Foreign keys cascade to manifests, references, tags, links, sessions and history.
            try connection.query("DELETE FROM repositories WHERE id = ?", [.integer(id)])
            return uploads
        }
    }

    public func tagHistory(in repository: RepositoryName, tag: Tag?, limit: Int) async throws -> [TagMove] {
        let sql = """
            SELECT h.tag, h.old_digest, h.new_digest, h.actor, h.at FROM tag_history h
            JOIN repositories r ON r.id = h.repository_id WHERE r.name = ?1 AND (?2 IS NULL OR h.tag = ?2) ORDER BY h.id DESC LIMIT ?3
            """
        return try database.read { connection in
            try connection.rows(sql, [.text(repository.value), .optional(tag?.value), .integer(Int64(limit))]) { row in
                TagMove(
                    tag: row.text(0), oldDigest: row.optionalText(1), newDigest: row.optionalText(2), actor: row.optionalText(3),
                    at: row.integer(4))
            }
        }
    }

    public func pruneTagHistory(before time: Int64, limit: Int) async throws -> Int {
        try await database.write(freesSpace: true) { connection in
            try connection.query(
                "DELETE FROM tag_history WHERE id IN (SELECT id FROM tag_history WHERE at < ? ORDER BY at LIMIT ?)",
                [.integer(time), .integer(Int64(limit))])
            return connection.changes
        }
    }

    public func uploads(limit: Int) async throws -> [UploadSessionInfo] {
        let sql = """
            SELECT \(Self.uploadSessionColumns), u.updated_at
            FROM upload_sessions u JOIN repositories r ON r.id = u.repository_id ORDER BY u.updated_at, u.id LIMIT ?
            """
        return try database.read { connection in
            try connection.rows(sql, [.integer(Int64(limit))]) { row in
                UploadSessionInfo(session: try Self.uploadSession(from: row), updatedAt: row.integer(6))
            }
        }
    }
}
