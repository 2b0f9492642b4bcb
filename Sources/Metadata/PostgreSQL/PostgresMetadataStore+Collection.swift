import OCI
import PostgresNIO

/// The collection's queries, as on SQLite (`SQLiteMetadataStore+Collection.swift`): each
/// deciding statement re-checks its conditions in its own SERIALIZABLE transaction, so a
/// push through any instance that links, pins or references something meanwhile wins.
extension PostgresMetadataStore {

    /// A blob nothing holds on to: no link, no manifest reference, no live pin.
    private static func blobIsCollectable(now: Int64, cutoff: Int64) -> String {
        """
        b.created_at_ms <= \(cutoff)
        AND NOT EXISTS (SELECT 1 FROM blob_pins p WHERE p.digest = b.digest AND \(pinIsLive(now: now)))
        AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
        AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.digest = b.digest)
        """
    }

    public func untaggedManifests(olderThan cutoff: Int64, limit: Int) async throws -> [CollectableManifest] {
        try await manifests(where: CollectionConditions.manifestIsCollectable, cutoff, limit)
    }

    public func orphanedReferrers(olderThan cutoff: Int64, limit: Int) async throws -> [CollectableManifest] {
        try await manifests(where: CollectionConditions.referrerIsOrphaned, cutoff, limit)
    }

    public func deleteManifestIfCollectable(_ manifest: CollectableManifest, olderThan cutoff: Int64) async throws -> Bool {
        try await database.write { connection in
            try await connection.run(
                """
                DELETE FROM manifests WHERE id IN (
                    SELECT m.id FROM manifests m JOIN repositories r ON r.id = m.repository_id
                    WHERE r.name = \(manifest.repository) AND m.digest = \(manifest.digest) AND m.created_at_ms <= \(cutoff)
                      AND \(unescaped: CollectionConditions.manifestIsCollectable))
                RETURNING 1
                """) > 0
        }
    }

    public func staleLinks(olderThan cutoff: Int64, limit: Int) async throws -> [StaleLink] {
        try await database.read { connection in
            try await connection.rows(
                """
                SELECT r.name, rb.digest FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
                WHERE rb.created_at_ms <= \(cutoff) AND \(unescaped: CollectionConditions.linkIsUnreferenced) LIMIT \(limit)
                """
            ) {
                let (repository, digest) = try $0.decode((String, String).self)
                return StaleLink(repository: repository, digest: digest)
            }
        }
    }

    public func deleteLinkIfStale(_ link: StaleLink, olderThan cutoff: Int64) async throws -> Bool {
        try await database.write { connection in
            try await connection.run(
                """
                DELETE FROM repository_blobs AS rb
                WHERE rb.repository_id = (SELECT id FROM repositories WHERE name = \(link.repository)) AND rb.digest = \(link.digest)
                  AND rb.created_at_ms <= \(cutoff) AND \(unescaped: CollectionConditions.linkIsUnreferenced)
                RETURNING 1
                """) > 0
        }
    }

    public func collectableBlobs(olderThan cutoff: Int64, limit: Int) async throws -> [CollectableBlob] {
        let condition = Self.blobIsCollectable(now: UnixTime.milliseconds(), cutoff: cutoff)
        return try await database.read { connection in
            try await connection.rows(
                "SELECT b.digest, b.size, b.deleting FROM blobs b WHERE b.deleting OR (\(unescaped: condition)) LIMIT \(limit)"
            ) {
                let (digest, size, marked) = try $0.decode((String, Int64, Bool).self)
                return CollectableBlob(digest: try Digest(parsing: digest), size: size, marked: marked)
            }
        }
    }

    public func markForDeletion(_ digest: Digest, olderThan cutoff: Int64) async throws -> Bool {
        let condition = Self.blobIsCollectable(now: UnixTime.milliseconds(), cutoff: cutoff)
        return try await database.write { connection in
            try await connection.run(
                """
                UPDATE blobs AS b SET deleting = true WHERE b.digest = \(digest.description) AND (b.deleting OR (\(unescaped: condition)))
                RETURNING 1
                """) > 0
        }
    }

    public func finishDeletion(_ digest: Digest) async throws {
        try await database.write { connection in
            try await connection.query("DELETE FROM blobs WHERE digest = \(digest.description) AND deleting", logger: connection.logger)
        }
    }

    public func blobsMarkedForDeletion(limit: Int) async throws -> [Digest] {
        try await database.read { connection in
            try await connection.rows(#"SELECT digest FROM blobs WHERE deleting ORDER BY digest COLLATE "C" LIMIT \#(limit)"#) {
                try Digest(parsing: $0.decode(String.self))
            }
        }
    }

    public func unmarkDeletion(_ digest: Digest) async throws {
        try await database.write { connection in
            try await connection.query("UPDATE blobs SET deleting = false WHERE digest = \(digest.description)", logger: connection.logger)
        }
    }

    public func storedBlobs(after last: String?, limit: Int) async throws -> [CollectableBlob] {
        try await database.read { connection in
            try await connection.rows(
                #"""
                SELECT digest, size FROM blobs WHERE NOT deleting AND digest COLLATE "C" > \#(last ?? "")
                ORDER BY digest COLLATE "C" LIMIT \#(limit)
                """#
            ) {
                let (digest, size) = try $0.decode((String, Int64).self)
                return CollectableBlob(digest: try Digest(parsing: digest), size: size, marked: false)
            }
        }
    }

    public func hasBlobRow(_ digest: Digest) async throws -> Bool {
        try await database.read { connection in
            try await connection.first("SELECT 1 FROM blobs WHERE digest = \(digest.description)") { _ in true } ?? false
        }
    }

    public func markOrphanForDeletion(_ digest: Digest) async throws -> Bool {
        try await database.write { connection in
            try await connection.run(
                """
                INSERT INTO blobs (digest, size, created_at_ms, deleting) VALUES (\(digest.description), 0, \(UnixTime.milliseconds()), true)
                ON CONFLICT (digest) DO NOTHING RETURNING 1
                """) > 0
        }
    }

    public func referencesWithoutBlobs(limit: Int) async throws -> [(repository: String, manifest: String, blob: String)] {
        try await database.read { connection in
            try await connection.rows(
                """
                SELECT r.name, m.digest, mr.digest FROM manifest_references mr JOIN manifests m ON m.id = mr.manifest_id
                JOIN repositories r ON r.id = m.repository_id
                WHERE mr.kind = 'blob' AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = mr.digest) LIMIT \(limit)
                """
            ) {
                let (repository, manifest, blob) = try $0.decode((String, String, String).self)
                return (repository: repository, manifest: manifest, blob: blob)
            }
        }
    }

    private func manifests(where condition: String, _ cutoff: Int64, _ limit: Int) async throws -> [CollectableManifest] {
        try await database.read { connection in
            try await connection.rows(
                """
                SELECT r.name, m.digest, octet_length(m.content)::bigint FROM manifests m JOIN repositories r ON r.id = m.repository_id
                WHERE m.created_at_ms <= \(cutoff) AND \(unescaped: condition) LIMIT \(limit)
                """
            ) {
                let (repository, digest, size) = try $0.decode((String, String, Int64).self)
                return CollectableManifest(repository: repository, digest: digest, size: size)
            }
        }
    }

    // MARK: The cluster's collection lock

    /// A session-level advisory lock (two-key form: the migration lock's first half, 2).
    /// PostgreSQL releases it when the holding connection closes, so an instance killed in
    /// the middle of a collection leaves nothing that blocks the next one.
    static let collectionLockKeys: (Int32, Int32) = (0x7265_6769, 2)

    public func whileHoldingCollectionLock<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T? {
        let (high, low) = Self.collectionLockKeys
        return try await database.read { connection in
            let taken = try await connection.first("SELECT pg_try_advisory_lock(\(high), \(low))") { try $0.decode(Bool.self) }
            guard taken == true else { return nil }
            do {
                // Who holds it, for `gc.status` on the other instances.
                try await connection.query(
                    """
                    INSERT INTO collection_claims (id, instance, started_at_ms) VALUES (1, \(instance), \(UnixTime.milliseconds()))
                    ON CONFLICT (id) DO UPDATE SET instance = excluded.instance, started_at_ms = excluded.started_at_ms
                    """, logger: connection.logger)
                let result = try await body()
                try await connection.query("SELECT pg_advisory_unlock(\(high), \(low))", logger: connection.logger)
                return result
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(high), \(low))", logger: connection.logger)
                throw error
            }
        }
    }

    public func collectionRunningElsewhere() async throws -> CollectionClaim? {
        let (high, low) = Self.collectionLockKeys
        // The claim counts only while its lock is held (the row of a finished or killed run stays).
        return try await database.read { connection in
            try await connection.first(
                """
                SELECT c.instance, c.started_at_ms FROM collection_claims c
                WHERE c.instance <> \(instance) AND EXISTS (
                    SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
                      AND l.classid::bigint = \(Int64(high)) AND l.objid::bigint = \(Int64(low)) AND l.objsubid = 2)
                """
            ) {
                let (holder, started) = try $0.decode((String, Int64).self)
                return CollectionClaim(instance: holder, startedAtMilliseconds: started)
            }
        }
    }
}
