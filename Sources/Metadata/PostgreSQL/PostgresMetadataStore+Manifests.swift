import NIOCore
import OCI
import PostgresNIO

extension PostgresMetadataStore {
    public func manifest(_ reference: ManifestReference, in repository: RepositoryName) async throws -> StoredManifest? {
        func storedManifest(_ row: PostgresRow) throws -> StoredManifest {
            let (digest, mediaType, content) = try row.decode((String, String, ByteBuffer).self)
            return StoredManifest(digest: try Digest(parsing: digest), mediaType: mediaType, content: Array(content.readableBytesView))
        }
        return try await database.cachedRead(HotReadKey.manifest(reference, repository), size: { ($0?.content.count ?? 0) + 200 }) {
            connection in
            switch reference {
            case .digest(let digest):
                try await connection.first(ManifestByDigest.self, repository.value, digest.description, row: storedManifest)
            case .tag(let tag):
                try await connection.first(ManifestByTag.self, repository.value, tag.value, row: storedManifest)
            }
        }
    }

    enum ManifestByDigest: HotStatement {
        static let sql = """
            SELECT m.digest, m.media_type, m.content FROM manifests m JOIN repositories r ON r.id = m.repository_id
            WHERE r.name = $1 AND m.digest = $2
            """
    }

    enum ManifestByTag: HotStatement {
        static let sql = """
            SELECT m.digest, m.media_type, m.content FROM tags t
            JOIN repositories r ON r.id = t.repository_id
            JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest
            WHERE r.name = $1 AND t.name = $2
            """
    }

    public func putManifest(_ manifest: NewManifest, in repository: RepositoryName, tags: [Tag], actor: String?)
        async throws(PutManifestError)
    {
        do {
            try await database.write { connection in
                let repositoryID = try await connection.ensureRepository(repository)
                // One round trip for all the blobs, one for all the children.
                let required = manifest.requiredBlobs.map(\.description)
                if !required.isEmpty {
                    let linked = Set(try await connection.rows(LinkedBlobs.self, repositoryID, required) { try $0.decode(String.self) })
                    if let missing = manifest.requiredBlobs.first(where: { !linked.contains($0.description) }) {
                        throw PutManifestError.blobUnknown(missing)
                    }
                }
                let children = manifest.childManifests.map(\.description)
                if !manifest.allowMissingChildren && !children.isEmpty {
                    let present = Set(
                        try await connection.rows(
                            "SELECT digest FROM manifests WHERE repository_id = \(repositoryID) AND digest = ANY(\(children))"
                        ) { try $0.decode(String.self) })
                    if let missing = manifest.childManifests.first(where: { !present.contains($0.description) }) {
                        throw PutManifestError.manifestUnknown(missing)
                    }
                }
                let createdAt = UnixTime.milliseconds()
                let inserted = try await connection.first(
                    AddManifest.self, repositoryID, manifest.digest.description, manifest.mediaType, manifest.artifactType,
                    manifest.subject?.description, manifest.annotationsJSON, ByteBuffer(bytes: manifest.content), createdAt
                ) { try $0.decode(Int64.self) }
                if let manifestID = inserted {
                    var references: [(String, Digest)] = manifest.requiredBlobs.map { ("blob", $0) }
                    references += manifest.foreignBlobs.map { ("foreign", $0) }
                    references += manifest.childManifests.map { ("manifest", $0) }
                    if let subject = manifest.subject { references.append(("subject", subject)) }
                    if !references.isEmpty {
                        try await connection.run(AddReferences.self, manifestID, references.map(\.0), references.map(\.1.description))
                    }
                }
                for tag in tags {
                    try await connection.moveTag(
                        tag.value, in: repositoryID, to: manifest.digest.description, actor: actor, at: createdAt / 1000)
                }
            }
        } catch let error as PutManifestError {
            throw error
        } catch let error as MetadataError {
            throw .metadata(error)
        } catch {
            throw .metadata(.backend(MetadataBackendError(code: nil, underlying: error)))
        }
    }

    enum LinkedBlobs: HotStatement {
        static let sql = "SELECT digest FROM repository_blobs WHERE repository_id = $1 AND digest = ANY($2)"
    }

    enum AddManifest: HotStatement {
        static let sql = """
            INSERT INTO manifests (repository_id, digest, media_type, artifact_type, subject_digest, annotations, content, created_at_ms)
            VALUES ($1, $2, $3, $4::text, $5::text, $6::text, $7, $8)
            ON CONFLICT (repository_id, digest) DO NOTHING RETURNING id
            """
    }

    /// Every reference of a manifest in one statement: kinds and digests as two arrays.
    enum AddReferences: HotStatement {
        static let sql = """
            INSERT INTO manifest_references (manifest_id, kind, digest)
            SELECT $1, kind, digest FROM unnest($2::text[], $3::text[]) AS r(kind, digest)
            ON CONFLICT DO NOTHING
            """
    }

    public func deleteManifest(_ digest: Digest, in repository: RepositoryName, actor: String?) async throws -> Bool {
        try await database.write { connection in
            guard let repositoryID = try await connection.repositoryID(repository) else { return false }
            let now = UnixTime.seconds()
            let tags = try await connection.rows(
                "SELECT name FROM tags WHERE repository_id = \(repositoryID) AND manifest_digest = \(digest.description)"
            ) { try $0.decode(String.self) }
            for tag in tags {
                try await connection.moveTag(tag, in: repositoryID, to: nil, actor: actor, at: now)
            }
            return try await connection.run(
                "DELETE FROM manifests WHERE repository_id = \(repositoryID) AND digest = \(digest.description) RETURNING 1") > 0
        }
    }

    public func deleteTag(_ tag: Tag, in repository: RepositoryName, actor: String?) async throws -> Bool {
        try await database.write { connection in
            guard let repositoryID = try await connection.repositoryID(repository) else { return false }
            return try await connection.moveTag(tag.value, in: repositoryID, to: nil, actor: actor, at: UnixTime.seconds())
        }
    }

    public func tags(in repository: RepositoryName, after last: String?, limit: Int) async throws -> [String]? {
        try await database.cachedRead(HotReadKey.tags(repository, last, limit), size: { ($0 ?? []).reduce(64) { $0 + $1.utf8.count + 16 } })
        {
            connection in
            guard let repositoryID = try await connection.repositoryID(repository) else { return nil }
            // COLLATE "C": byte order, as SQLite sorts and the API promises (lexical order).
            return try await connection.rows(
                """
                SELECT name FROM tags WHERE repository_id = \(repositoryID) AND name COLLATE "C" > \(last ?? "")
                ORDER BY name COLLATE "C" LIMIT \(limit)
                """
            ) { try $0.decode(String.self) }
        }
    }

    public func referrers(of digest: Digest, in repository: RepositoryName, artifactType: String?) async throws -> [Referrer] {
        try await database.read { connection in
            try await connection.rows(
                """
                SELECT m.digest, m.media_type, octet_length(m.content)::bigint, m.artifact_type, m.annotations
                FROM manifests m JOIN repositories r ON r.id = m.repository_id
                WHERE r.name = \(repository.value) AND m.subject_digest = \(digest.description)
                  AND (\(artifactType)::text IS NULL OR m.artifact_type = \(artifactType)::text)
                ORDER BY m.created_at_ms, m.id
                """
            ) { row in
                let (digest, mediaType, size, artifactType, annotations) = try row.decode((String, String, Int64, String?, String?).self)
                return Referrer(
                    digest: try Digest(parsing: digest), mediaType: mediaType, size: size, artifactType: artifactType,
                    annotationsJSON: annotations)
            }
        }
    }
}

extension PostgresConnection {
    /// Points a tag at `digest` (deletes it when `nil`) and records the move.
    /// - Returns: whether anything changed.
    @discardableResult
    func moveTag(_ tag: String, in repositoryID: Int64, to digest: String?, actor: String?, at now: Int64) async throws -> Bool {
        if let digest {
            try await run(MoveTag.self, repositoryID, tag, digest, actor, now) > 0
        } else {
            try await run(RemoveTag.self, repositoryID, tag, actor, now) > 0
        }
    }

    /// Points a tag at a manifest and records the move, in one round trip; a tag already
    /// there changes nothing and records nothing (no row back). Every part of the
    /// statement sees the tag as it was before it.
    private enum MoveTag: HotStatement {
        static let sql = """
            WITH old AS (SELECT manifest_digest FROM tags WHERE repository_id = $1 AND name = $2),
            moved AS (
                INSERT INTO tags (repository_id, name, manifest_digest, updated_at)
                SELECT $1, $2, $3, $5 WHERE NOT EXISTS (SELECT 1 FROM old WHERE manifest_digest = $3)
                ON CONFLICT (repository_id, name) DO UPDATE SET manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at
                RETURNING 1
            )
            INSERT INTO tag_history (repository_id, tag, old_digest, new_digest, actor, at)
            SELECT $1, $2, (SELECT manifest_digest FROM old), $3, $4::text, $5 FROM moved
            RETURNING 1
            """
    }

    /// Deletes a tag and records it, in one round trip (no row back when there was none).
    private enum RemoveTag: HotStatement {
        static let sql = """
            WITH removed AS (DELETE FROM tags WHERE repository_id = $1 AND name = $2 RETURNING manifest_digest)
            INSERT INTO tag_history (repository_id, tag, old_digest, new_digest, actor, at)
            SELECT $1, $2, manifest_digest, NULL, $3::text, $4 FROM removed
            RETURNING 1
            """
    }
}
