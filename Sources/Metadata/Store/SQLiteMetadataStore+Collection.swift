import OCI

extension SQLiteMetadataStore {

    public func untaggedManifests(olderThan cutoff: Int64, limit: Int) async throws -> [CollectableManifest] {
        try await manifests(where: CollectionConditions.manifestIsCollectable, cutoff, limit)
    }

    public func orphanedReferrers(olderThan cutoff: Int64, limit: Int) async throws -> [CollectableManifest] {
        try await manifests(where: CollectionConditions.referrerIsOrphaned, cutoff, limit)
    }

    public func deleteManifestIfCollectable(_ manifest: CollectableManifest, olderThan cutoff: Int64) async throws -> Bool {
        let sql = """
            DELETE FROM manifests WHERE id IN (
                SELECT m.id FROM manifests m JOIN repositories r ON r.id = m.repository_id
                WHERE r.name = ? AND m.digest = ? AND m.created_at_ms <= ?
                  AND \(CollectionConditions.manifestIsCollectable))
            """
        return try await database.write(freesSpace: true) { connection in
            try connection.query(sql, [.text(manifest.repository), .text(manifest.digest), .integer(cutoff)])
            return connection.changes > 0
        }
    }

    public func staleLinks(olderThan cutoff: Int64, limit: Int) async throws -> [StaleLink] {
        let sql = """
            SELECT r.name, rb.digest FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
            WHERE rb.created_at_ms <= ? AND \(CollectionConditions.linkIsUnreferenced) LIMIT ?
            """
        return try database.read { connection in
            try connection.rows(sql, [.integer(cutoff), .integer(Int64(limit))]) { StaleLink(repository: $0.text(0), digest: $0.text(1)) }
        }
    }

    public func deleteLinkIfStale(_ link: StaleLink, olderThan cutoff: Int64) async throws -> Bool {
        let sql = """
            DELETE FROM repository_blobs AS rb
            WHERE rb.repository_id = (SELECT id FROM repositories WHERE name = ?) AND rb.digest = ? AND rb.created_at_ms <= ? AND \(CollectionConditions.linkIsUnreferenced)
            """
        return try await database.write(freesSpace: true) { connection in
            try connection.query(sql, [.text(link.repository), .text(link.digest), .integer(cutoff)])
            return connection.changes > 0
        }
    }

    /// A blob nothing holds on to: no link, no manifest reference, no live pin.
    /// `?1` is now and `?2` the cutoff, in milliseconds.
    private static let blobIsCollectable = """
        b.created_at_ms <= ?2
        AND NOT EXISTS (SELECT 1 FROM blob_pins p WHERE p.digest = b.digest AND \(pinIsLive))
        AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
        AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.digest = b.digest)
        """

    public func collectableBlobs(olderThan cutoff: Int64, limit: Int) async throws -> [CollectableBlob] {
        let sql = "SELECT b.digest, b.size, b.deleting FROM blobs b WHERE b.deleting = 1 OR (\(Self.blobIsCollectable)) LIMIT ?3"
        return try database.read { connection in
            try connection.rows(sql, [.integer(UnixTime.milliseconds()), .integer(cutoff), .integer(Int64(limit))]) {
                CollectableBlob(digest: try Digest(parsing: $0.text(0)), size: $0.integer(1), marked: $0.integer(2) != 0)
            }
        }
    }

    public func markForDeletion(_ digest: Digest, olderThan cutoff: Int64) async throws -> Bool {
        let sql = "UPDATE blobs AS b SET deleting = 1 WHERE b.digest = ?3 AND (b.deleting = 1 OR (\(Self.blobIsCollectable)))"
        return try await database.write(freesSpace: true) { connection in
            try connection.query(sql, [.integer(UnixTime.milliseconds()), .integer(cutoff), .text(digest.description)])
            return connection.changes > 0
        }
    }

    public func finishDeletion(_ digest: Digest) async throws {
        try await database.write(freesSpace: true) { connection in
            try connection.query("DELETE FROM blobs WHERE digest = ? AND deleting = 1", [.text(digest.description)])
        }
    }

    public func blobsMarkedForDeletion(limit: Int) async throws -> [Digest] {
        try database.read { connection in
            try connection.rows("SELECT digest FROM blobs WHERE deleting = 1 ORDER BY digest LIMIT ?", [.integer(Int64(limit))]) {
                try Digest(parsing: $0.text(0))
            }
        }
    }

    public func unmarkDeletion(_ digest: Digest) async throws {
        try await database.write(freesSpace: true) { connection in
            try connection.query("UPDATE blobs SET deleting = 0 WHERE digest = ?", [.text(digest.description)])
        }
    }

    public func storedBlobs(after last: String?, limit: Int) async throws -> [CollectableBlob] {
        try database.read { connection in
            try connection.rows(
                "SELECT digest, size FROM blobs WHERE deleting = 0 AND digest > ? ORDER BY digest LIMIT ?",
                [.text(last ?? ""), .integer(Int64(limit))]
            ) {
                CollectableBlob(digest: try Digest(parsing: $0.text(0)), size: $0.integer(1), marked: false)
            }
        }
    }

    public func hasBlobRow(_ digest: Digest) async throws -> Bool {
        try database.read { try $0.first("SELECT 1 FROM blobs WHERE digest = ?", [.text(digest.description)]) { _ in true } ?? false }
    }

    public func markOrphanForDeletion(_ digest: Digest) async throws -> Bool {
        try await database.write(freesSpace: true) { connection in
            try connection.query(
                "INSERT INTO blobs (digest, size, created_at_ms, deleting) VALUES (?, 0, ?, 1) ON CONFLICT (digest) DO NOTHING",
                [.text(digest.description), .integer(UnixTime.milliseconds())])
            return connection.changes > 0
        }
    }

    public func referencesWithoutBlobs(limit: Int) async throws -> [(repository: String, manifest: String, blob: String)] {
        let sql = """
            SELECT r.name, m.digest, mr.digest FROM manifest_references mr JOIN manifests m ON m.id = mr.manifest_id
            JOIN repositories r ON r.id = m.repository_id
            WHERE mr.kind = 'blob' AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = mr.digest) LIMIT ?
            """
        return try database.read { connection in
            try connection.rows(sql, [.integer(Int64(limit))]) { (repository: $0.text(0), manifest: $0.text(1), blob: $0.text(2)) }
        }
    }

    private func manifests(where condition: String, _ cutoff: Int64, _ limit: Int) async throws -> [CollectableManifest] {
        let sql = """
            SELECT r.name, m.digest, length(m.content) FROM manifests m JOIN repositories r ON r.id = m.repository_id
            WHERE m.created_at_ms <= ? AND \(condition) LIMIT ?
            """
        return try database.read { connection in
            try connection.rows(sql, [.integer(cutoff), .integer(Int64(limit))]) {
                CollectableManifest(repository: $0.text(0), digest: $0.text(1), size: $0.integer(2))
            }
        }
    }

    /// One process owns a SQLite database: the collector's own guard is the lock.
    public func whileHoldingCollectionLock<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T? {
        try await body()
    }

    public func collectionRunningElsewhere() async throws -> CollectionClaim? { nil }
}
