import OCI

/// Pins and the instance lease that keeps them alive (migration 5). A pin protects a
/// blob from collection between an upload's digest check and its link; it belongs to
/// that upload on this store's instance. A pin counts while its instance's lease runs
/// (and for at most `InstanceLease.longestPin`, against a pin some bug never dropped).
extension SQLiteMetadataStore {
    /// Pins that count: taken by the running process of a live instance (not by one
    /// before its last start), and not older than the longest pin. `?1` is now in
    /// milliseconds.
    static let pinIsLive = """
        p.pinned_at_ms > ?1 - \(InstanceLease.longestPin.milliseconds)
        AND EXISTS (SELECT 1 FROM instances i WHERE i.id = p.instance AND i.lease_expires_at_ms > ?1 AND p.pinned_at_ms >= i.started_at_ms)
        """

    /// Starts this instance's lease and releases every pin it held before: they belong
    /// to uploads of a process that is gone (this one has served nothing yet).
    /// - Returns: the blobs whose pins were released.
    static func startInstance(
        _ instance: String, description: InstanceDescription, leaseDuration: Duration, in database: SQLiteDatabase
    ) throws -> [Digest] {
        try database.writeBlocking { connection in
            let now = UnixTime.milliseconds()
            try connection.query(
                """
                INSERT INTO instances (id, started_at_ms, lease_expires_at_ms, host, pid, version, renewed_at_ms)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?2)
                ON CONFLICT (id) DO UPDATE SET started_at_ms = excluded.started_at_ms, lease_expires_at_ms = excluded.lease_expires_at_ms,
                    host = excluded.host, pid = excluded.pid, version = excluded.version, renewed_at_ms = excluded.renewed_at_ms
                """,
                [
                    .text(instance), .integer(now), .integer(now + leaseDuration.milliseconds), .text(description.host),
                    .integer(description.pid), .text(description.version),
                ])
            return try connection.rows("DELETE FROM blob_pins WHERE instance = ? RETURNING digest", [.text(instance)]) {
                try Digest(parsing: $0.text(0))
            }
        }
    }

    /// Extends the lease and writes the heartbeat; then takes the database's space reserve
    /// again if a full disk has room by now (see `SpaceReserve`).
    public func renewInstanceLease() async throws {
        // Not durable: after a power cut every instance starts again anyway.
        try await database.write(durable: false) { connection in
            let now = UnixTime.milliseconds()
            try connection.query(
                "UPDATE instances SET lease_expires_at_ms = ?, renewed_at_ms = ? WHERE id = ?",
                [.integer(now + self.leaseDuration.milliseconds), .integer(now), .text(self.instance)])
        }
        restoreSpaceReserve()
    }

    public func liveInstances() async throws -> [InstanceHeartbeat] {
        try database.read { connection in
            try connection.rows(
                """
                SELECT id, host, pid, version, started_at_ms, renewed_at_ms, lease_expires_at_ms FROM instances
                WHERE lease_expires_at_ms > ? ORDER BY id
                """, [.integer(UnixTime.milliseconds())]
            ) { row in
                InstanceHeartbeat(
                    id: row.text(0), host: row.text(1), pid: row.integer(2), version: row.text(3), startedAtMilliseconds: row.integer(4),
                    renewedAtMilliseconds: row.integer(5), leaseExpiresAtMilliseconds: row.integer(6))
            }
        }
    }

    public func pinBlob(_ digest: Digest, size: Int64, for upload: UploadID) async throws -> Bool {
        // Not durable on its own: a pin matters only while its upload runs, and the
        // upload's final, durable commit carries it to disk. After a power cut the bytes
        // may lie in place without a row; `registryctl storage verify` finds them.
        try await database.write(durable: false) { connection in
            let now = UnixTime.milliseconds()
            if let deleting = try connection.first(
                "SELECT deleting FROM blobs WHERE digest = ?", [.text(digest.description)], { $0.integer(0) != 0 })
            {
                if deleting { return false }
            } else {
                try connection.query(
                    "INSERT INTO blobs (digest, size, created_at_ms) VALUES (?, ?, ?)",
                    [.text(digest.description), .integer(size), .integer(now)])
            }
            try connection.query(
                """
                INSERT INTO blob_pins (upload_id, digest, instance, pinned_at_ms) VALUES (?1, ?2, ?3, ?4)
                ON CONFLICT (upload_id) DO UPDATE SET digest = excluded.digest, pinned_at_ms = excluded.pinned_at_ms
                """, [.text(upload.value), .text(digest.description), .text(self.instance), .integer(now)])
            return true
        }
    }

    public func unpinBlob(for upload: UploadID) async throws {
        try await database.write(freesSpace: true) { connection in
            try connection.query("DELETE FROM blob_pins WHERE upload_id = ?", [.text(upload.value)])
        }
    }

    public func isPinned(_ digest: Digest) async throws -> Bool {
        try database.read { connection in
            try connection.first(
                "SELECT 1 FROM blob_pins p WHERE p.digest = ?2 AND \(Self.pinIsLive)",
                [.integer(UnixTime.milliseconds()), .text(digest.description)]
            ) { _ in true } ?? false
        }
    }

    public func releaseDeadPins() async throws -> Int {
        try await database.write(freesSpace: true) { connection in
            try connection.query("DELETE FROM blob_pins AS p WHERE NOT (\(Self.pinIsLive))", [.integer(UnixTime.milliseconds())])
            return connection.changes
        }
    }

    public func deleteRowIfUnheld(_ digest: Digest) async throws -> Bool {
        let sql = """
            DELETE FROM blobs AS b WHERE b.digest = ?2 AND b.deleting = 0
              AND NOT EXISTS (SELECT 1 FROM blob_pins p WHERE p.digest = b.digest AND \(Self.pinIsLive))
              AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
              AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.digest = b.digest)
            """
        return try await database.write(freesSpace: true) { connection in
            try connection.query(sql, [.integer(UnixTime.milliseconds()), .text(digest.description)])
            return connection.changes > 0
        }
    }
}
