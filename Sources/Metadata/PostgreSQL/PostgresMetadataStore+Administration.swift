import OCI
import PostgresNIO

extension PostgresMetadataStore {
    public func repositorySummary(_ name: RepositoryName) async throws -> RepositorySummary? {
        // One snapshot for the four queries: a summary never mixes two states.
        try await database.snapshot { connection in
            guard
                let (id, isPublic, createdAt) = try await connection.first(
                    "SELECT id, is_public, created_at FROM repositories WHERE name = \(name.value)",
                    { try $0.decode((Int64, Bool, Int64).self) })
            else { return nil }
            let tags = try await connection.rows(
                #"SELECT name, manifest_digest FROM tags WHERE repository_id = \#(id) ORDER BY name COLLATE "C""#
            ) {
                let (tag, digest) = try $0.decode((String, String).self)
                return (tag: tag, digest: digest)
            }
            let manifests = try await connection.rows(
                """
                SELECT digest, media_type, octet_length(content)::bigint, created_at_ms / 1000 FROM manifests
                WHERE repository_id = \(id) ORDER BY created_at_ms, id
                """
            ) {
                let (digest, mediaType, size, createdAt) = try $0.decode((String, String, Int64, Int64).self)
                return (digest: digest, mediaType: mediaType, size: size, createdAt: createdAt)
            }
            let (count, bytes) =
                try await connection.first(
                    """
                    SELECT count(*), coalesce(sum(b.size), 0)::bigint FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
                    WHERE rb.repository_id = \(id)
                    """
                ) { row -> (Int64, Int64) in try row.decode((Int64, Int64).self) } ?? (0, 0)
            return RepositorySummary(
                name: name.value, isPublic: isPublic, createdAt: createdAt, tags: tags, manifests: manifests, blobBytes: bytes,
                blobCount: Int(count))
        }
    }

    public func deleteRepository(_ name: RepositoryName) async throws -> [UploadID]? {
        try await database.write { connection in
            guard let id = try await connection.repositoryID(name) else { return nil }
            let uploads = try await connection.rows("SELECT id FROM upload_sessions WHERE repository_id = \(id)") {
                try UploadID(parsing: $0.decode(String.self))
            }
            // Foreign keys cascade to manifests, references, tags, links, sessions and history.
            try await connection.query("DELETE FROM repositories WHERE id = \(id)", logger: connection.logger)
            return uploads
        }
    }

    public func tagHistory(in repository: RepositoryName, tag: Tag?, limit: Int) async throws -> [TagMove] {
        try await database.read { connection in
            try await connection.rows(
                """
                SELECT h.tag, h.old_digest, h.new_digest, h.actor, h.at FROM tag_history h
                JOIN repositories r ON r.id = h.repository_id
                WHERE r.name = \(repository.value) AND (\(tag?.value)::text IS NULL OR h.tag = \(tag?.value)::text)
                ORDER BY h.id DESC LIMIT \(limit)
                """
            ) { row in
                let (tag, old, new, actor, at) = try row.decode((String, String?, String?, String?, Int64).self)
                return TagMove(tag: tag, oldDigest: old, newDigest: new, actor: actor, at: at)
            }
        }
    }

    public func pruneTagHistory(before time: Int64, limit: Int) async throws -> Int {
        try await database.write { connection in
            try await connection.run(
                "DELETE FROM tag_history WHERE id IN (SELECT id FROM tag_history WHERE at < \(time) ORDER BY at LIMIT \(limit)) RETURNING 1"
            )
        }
    }

    public func uploads(limit: Int) async throws -> [UploadSessionInfo] {
        try await database.read { connection in
            try await connection.rows(
                """
                SELECT \(unescaped: Self.uploadSessionColumns), u.updated_at
                FROM upload_sessions u JOIN repositories r ON r.id = u.repository_id ORDER BY u.updated_at, u.id LIMIT \(limit)
                """
            ) { row in
                var cells = row.makeIterator()
                for _ in 0..<6 { _ = cells.next() }
                let updatedAt = try cells.next()?.decode(Int64.self) ?? 0
                return UploadSessionInfo(session: try Self.uploadSession(from: row), updatedAt: updatedAt)
            }
        }
    }

    // MARK: Audit

    public func recordAudit(actor: String, method: String, params: String?) async throws {
        try await database.write { connection in
            try await connection.query(
                "INSERT INTO audit_log (at, actor, method, params) VALUES (\(UnixTime.seconds()), \(actor), \(method), \(params))",
                logger: connection.logger)
        }
    }

    public func auditEntries(limit: Int) async throws -> [AuditEntry] {
        try await database.read { connection in
            try await connection.rows("SELECT at, actor, method, params FROM audit_log ORDER BY id DESC LIMIT \(limit)") { row in
                let (at, actor, method, params) = try row.decode((Int64, String, String, String?).self)
                return AuditEntry(at: at, actor: actor, method: method, params: params)
            }
        }
    }

    public func pruneAudit(before time: Int64, limit: Int) async throws -> Int {
        try await database.write { connection in
            try await connection.run(
                "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < \(time) ORDER BY at LIMIT \(limit)) RETURNING 1")
        }
    }
}
