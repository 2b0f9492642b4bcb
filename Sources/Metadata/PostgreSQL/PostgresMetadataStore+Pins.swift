import OCI
import PostgresNIO

/// Instances, their leases and heartbeats, and the pins their uploads hold: the same
/// protocol as the SQLite backend's (see `SQLiteMetadataStore+Pins.swift`), for many
/// instances at once. Every instance's clock is compared with the others' lease times, so
/// the hosts keep time (NTP); a lease lasts a minute, skews of seconds are harmless.
extension PostgresMetadataStore {
    /// Pins that count (see `SQLiteMetadataStore.pinIsLive`): `now` in milliseconds.
    static func pinIsLive(now: Int64) -> String {
        """
        p.pinned_at_ms > \(now - InstanceLease.longestPin.milliseconds)
        AND EXISTS (SELECT 1 FROM instances i WHERE i.id = p.instance AND i.lease_expires_at_ms > \(now) AND p.pinned_at_ms >= i.started_at_ms)
        """
    }

    static func startInstance(
        _ instance: String, description: InstanceDescription, leaseDuration: Duration, in database: PostgresDatabase
    ) async throws -> [Digest] {
        try await database.write { connection in
            let now = UnixTime.milliseconds()
            try await connection.query(
                """
                INSERT INTO instances (id, started_at_ms, lease_expires_at_ms, host, pid, version, renewed_at_ms)
                VALUES (\(instance), \(now), \(now + leaseDuration.milliseconds), \(description.host), \(description.pid), \(description.version), \(now))
                ON CONFLICT (id) DO UPDATE SET started_at_ms = excluded.started_at_ms, lease_expires_at_ms = excluded.lease_expires_at_ms,
                    host = excluded.host, pid = excluded.pid, version = excluded.version, renewed_at_ms = excluded.renewed_at_ms
                """, logger: connection.logger)
            return try await connection.rows("DELETE FROM blob_pins WHERE instance = \(instance) RETURNING digest") {
                try Digest(parsing: $0.decode(String.self))
            }
        }
    }

    public func renewInstanceLease() async throws {
        try await database.write(durable: false) { connection in
            let now = UnixTime.milliseconds()
            try await connection.query(
                """
                UPDATE instances SET lease_expires_at_ms = \(now + leaseDuration.milliseconds), renewed_at_ms = \(now),
                    host = \(description.host), pid = \(description.pid), version = \(description.version)
                WHERE id = \(instance)
                """, logger: connection.logger)
        }
    }

    public func liveInstances() async throws -> [InstanceHeartbeat] {
        try await database.read { connection in
            try await connection.rows(
                """
                SELECT id, host, pid, version, started_at_ms, renewed_at_ms, lease_expires_at_ms FROM instances
                WHERE lease_expires_at_ms > \(UnixTime.milliseconds()) ORDER BY id
                """
            ) { row in
                let (id, host, pid, version, started, renewed, expires) = try row.decode(
                    (String, String, Int64, String, Int64, Int64, Int64).self)
                return InstanceHeartbeat(
                    id: id, host: host, pid: pid, version: version, startedAtMilliseconds: started, renewedAtMilliseconds: renewed,
                    leaseExpiresAtMilliseconds: expires)
            }
        }
    }

    public func pinBlob(_ digest: Digest, size: Int64, for upload: UploadID) async throws -> Bool {
        try await database.write(durable: false) { connection in
            let now = UnixTime.milliseconds()
            if try await connection.addBlob(digest, size: size, at: now) { return false }
            try await connection.run(PinBlob.self, upload.value, digest.description, instance, now)
            return true
        }
    }

    enum PinBlob: HotStatement {
        static let sql = """
            INSERT INTO blob_pins (upload_id, digest, instance, pinned_at_ms) VALUES ($1, $2, $3, $4)
            ON CONFLICT (upload_id) DO UPDATE SET digest = excluded.digest, pinned_at_ms = excluded.pinned_at_ms
            """
    }

    public func unpinBlob(for upload: UploadID) async throws {
        try await database.write { connection in
            try await connection.query("DELETE FROM blob_pins WHERE upload_id = \(upload.value)", logger: connection.logger)
        }
    }

    public func isPinned(_ digest: Digest) async throws -> Bool {
        try await database.read { connection in
            try await connection.first(
                "SELECT 1 FROM blob_pins p WHERE p.digest = \(digest.description) AND \(unescaped: Self.pinIsLive(now: UnixTime.milliseconds()))"
            ) { _ in true } ?? false
        }
    }

    public func releaseDeadPins() async throws -> Int {
        try await database.write { connection in
            try await connection.run(
                "DELETE FROM blob_pins AS p WHERE NOT (\(unescaped: Self.pinIsLive(now: UnixTime.milliseconds()))) RETURNING 1")
        }
    }

    public func deleteRowIfUnheld(_ digest: Digest) async throws -> Bool {
        try await database.write { connection in
            let deleted = try await connection.run(
                """
                DELETE FROM blobs AS b WHERE b.digest = \(digest.description) AND NOT b.deleting
                  AND NOT EXISTS (SELECT 1 FROM blob_pins p WHERE p.digest = b.digest AND \(unescaped: Self.pinIsLive(now: UnixTime.milliseconds())))
                  AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
                  AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.digest = b.digest)
                RETURNING 1
                """)
            return deleted > 0
        }
    }
}
