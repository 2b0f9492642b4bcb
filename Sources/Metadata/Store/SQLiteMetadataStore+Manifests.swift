import OCI

extension SQLiteMetadataStore {
    public func manifest(_ reference: ManifestReference, in repository: RepositoryName) async throws -> StoredManifest? {
        let byDigest = """
            SELECT m.digest, m.media_type, m.content FROM manifests m JOIN repositories r ON r.id = m.repository_id
            WHERE r.name = ? AND m.digest = ?
            """
        let byTag = """
            SELECT m.digest, m.media_type, m.content FROM tags t
            JOIN repositories r ON r.id = t.repository_id
            JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest
            WHERE r.name = ? AND t.name = ?
            """
        let (sql, key) =
            switch reference {
            case .digest(let digest): (byDigest, digest.description)
            case .tag(let tag): (byTag, tag.value)
            }
        return try database.cachedRead(HotReadKey.manifest(reference, repository), size: { ($0?.content.count ?? 0) + 200 }) { connection in
            try connection.first(sql, [.text(repository.value), .text(key)]) { row in
                StoredManifest(digest: try Digest(parsing: row.text(0)), mediaType: row.text(1), content: row.blob(2))
            }
        }
    }

    public func putManifest(_ manifest: NewManifest, in repository: RepositoryName, tags: [Tag], actor: String?)
        async throws(PutManifestError)
    {
        do {
            try await database.write { connection in
                let repositoryID = try connection.ensureRepository(repository)
                for blob in manifest.requiredBlobs {
                    let linked =
                        try connection.first(
                            "SELECT 1 FROM repository_blobs WHERE repository_id = ? AND digest = ?",
                            [.integer(repositoryID), .text(blob.description)]
                        ) { _ in true } ?? false
                    if !linked { throw PutManifestError.blobUnknown(blob) }
                }
                if !manifest.allowMissingChildren {
                    for child in manifest.childManifests {
                        let present =
                            try connection.first(
                                "SELECT 1 FROM manifests WHERE repository_id = ? AND digest = ?",
                                [.integer(repositoryID), .text(child.description)]
                            ) { _ in true } ?? false
                        if !present { throw PutManifestError.manifestUnknown(child) }
                    }
                }
                let createdAt = UnixTime.milliseconds()
                try connection.query(
                    """
                    INSERT INTO manifests (repository_id, digest, media_type, artifact_type, subject_digest, annotations, content, created_at_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (repository_id, digest) DO NOTHING
                    """,
                    [
                        .integer(repositoryID), .text(manifest.digest.description), .text(manifest.mediaType),
                        .optional(manifest.artifactType), .optional(manifest.subject?.description), .optional(manifest.annotationsJSON),
                        .blob(manifest.content), .integer(createdAt),
                    ])
                if connection.changes > 0 {
                    let manifestID = connection.lastInsertRowID
                    var references: [(String, Digest)] = manifest.requiredBlobs.map { ("blob", $0) }
                    references += manifest.foreignBlobs.map { ("foreign", $0) }
                    references += manifest.childManifests.map { ("manifest", $0) }
                    if let subject = manifest.subject { references.append(("subject", subject)) }
                    for (kind, digest) in references {
                        try connection.query(
                            "INSERT INTO manifest_references (manifest_id, kind, digest) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                            [.integer(manifestID), .text(kind), .text(digest.description)])
                    }
                }
                for tag in tags {
                    try connection.moveTag(tag.value, in: repositoryID, to: manifest.digest.description, actor: actor, at: createdAt / 1000)
                }
            }
        } catch let error as PutManifestError {
            throw error
        } catch MetadataError.storageFull {
            throw .storageFull
        } catch {
            throw .metadata(MetadataError(error))
        }
    }

    public func deleteManifest(_ digest: Digest, in repository: RepositoryName, actor: String?) async throws -> Bool {
        try await database.write(freesSpace: true) { connection in
            guard let repositoryID = try connection.repositoryID(repository) else { return false }
            let now = UnixTime.seconds()
            let tags = try connection.rows(
                "SELECT name FROM tags WHERE repository_id = ? AND manifest_digest = ?",
                [.integer(repositoryID), .text(digest.description)]
            ) { $0.text(0) }
            for tag in tags {
                try connection.moveTag(tag, in: repositoryID, to: nil, actor: actor, at: now)
            }
            try connection.query(
                "DELETE FROM manifests WHERE repository_id = ? AND digest = ?", [.integer(repositoryID), .text(digest.description)])
            return connection.changes > 0
        }
    }

    public func deleteTag(_ tag: Tag, in repository: RepositoryName, actor: String?) async throws -> Bool {
        try await database.write(freesSpace: true) { connection in
            guard let repositoryID = try connection.repositoryID(repository) else { return false }
            return try connection.moveTag(tag.value, in: repositoryID, to: nil, actor: actor, at: UnixTime.seconds())
        }
    }

    public func tags(in repository: RepositoryName, after last: String?, limit: Int) async throws -> [String]? {
        try database.cachedRead(HotReadKey.tags(repository, last, limit), size: { ($0 ?? []).reduce(64) { $0 + $1.utf8.count + 16 } }) {
            connection in
            guard let repositoryID = try connection.repositoryID(repository) else { return nil }
            return try connection.rows(
                "SELECT name FROM tags WHERE repository_id = ? AND name > ? ORDER BY name LIMIT ?",
                [.integer(repositoryID), .text(last ?? ""), .integer(Int64(limit))]
            ) { $0.text(0) }
        }
    }

    public func referrers(of digest: Digest, in repository: RepositoryName, artifactType: String?) async throws -> [Referrer] {
        let sql = """
            SELECT m.digest, m.media_type, length(m.content), m.artifact_type, m.annotations
            FROM manifests m JOIN repositories r ON r.id = m.repository_id
            WHERE r.name = ? AND m.subject_digest = ? AND (?3 IS NULL OR m.artifact_type = ?3)
            ORDER BY m.created_at_ms, m.id
            """
        return try database.read { connection in
            try connection.rows(sql, [.text(repository.value), .text(digest.description), .optional(artifactType)]) { row in
                Referrer(
                    digest: try Digest(parsing: row.text(0)), mediaType: row.text(1), size: row.integer(2),
                    artifactType: row.optionalText(3), annotationsJSON: row.optionalText(4))
            }
        }
    }
}

extension SQLiteConnection {
    /// Points a tag at `digest` (deletes it when `nil`) and records the move.
    /// - Returns: whether anything changed.
    @discardableResult
    func moveTag(_ tag: String, in repositoryID: Int64, to digest: String?, actor: String?, at now: Int64) throws -> Bool {
        let old = try first("SELECT manifest_digest FROM tags WHERE repository_id = ? AND name = ?", [.integer(repositoryID), .text(tag)]) {
            $0.text(0)
        }
        guard old != digest else { return false }
        if let digest {
            try query(
                """
                INSERT INTO tags (repository_id, name, manifest_digest, updated_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (repository_id, name) DO UPDATE SET manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at
                """, [.integer(repositoryID), .text(tag), .text(digest), .integer(now)])
        } else {
            try query("DELETE FROM tags WHERE repository_id = ? AND name = ?", [.integer(repositoryID), .text(tag)])
        }
        try query(
            "INSERT INTO tag_history (repository_id, tag, old_digest, new_digest, actor, at) VALUES (?, ?, ?, ?, ?, ?)",
            [.integer(repositoryID), .text(tag), .optional(old), .optional(digest), .optional(actor), .integer(now)])
        return true
    }
}
