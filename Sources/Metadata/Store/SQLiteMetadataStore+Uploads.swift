import OCI

extension SQLiteMetadataStore {
    public func createUpload(_ session: UploadSession) async throws {
        let sql = """
            INSERT INTO upload_sessions (id, repository_id, principal, digest_algorithm, size, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """
        // Not durable on its own: a session lost in a power cut has no acknowledged bytes
        // yet (its client starts over after a 404), and the next durable commit carries it
        // to disk anyway.
        try await database.write(durable: false) { connection in
            let repositoryID = try connection.ensureRepository(session.repository)
            try connection.query(
                sql,
                [
                    .text(session.id.value), .integer(repositoryID), .optional(session.principal),
                    .text(session.algorithm.rawValue), .integer(session.size), .integer(session.createdAt), .integer(session.createdAt),
                ])
        }
    }

    public func uploadCount(principal: String?) async throws -> Int {
        try database.read { connection in
            try connection.first("SELECT count(*) FROM upload_sessions WHERE principal IS ?", [.optional(principal)]) { Int($0.integer(0)) }
                ?? 0
        }
    }

    public func upload(_ id: UploadID) async throws -> UploadSession? {
        let sql = """
            SELECT \(Self.uploadSessionColumns)
            FROM upload_sessions u JOIN repositories r ON r.id = u.repository_id WHERE u.id = ?
            """
        return try database.read { connection in try connection.first(sql, [.text(id.value)], Self.uploadSession) }
    }

    /// The columns `uploadSession(from:)` reads, first in a row, in this order.
    static let uploadSessionColumns = "u.id, r.name, u.principal, u.digest_algorithm, u.size, u.created_at"

    /// An upload session from a row that starts with `uploadSessionColumns`. An algorithm
    /// this build does not know is a damaged row, never silently taken for sha256.
    static func uploadSession(from row: SQLiteRow) throws -> UploadSession {
        let id = try UploadID(parsing: row.text(0))
        guard let algorithm = DigestAlgorithm(rawValue: row.text(3)) else {
            throw MetadataError.damagedRow("upload \(id.value) names the digest algorithm \(row.text(3))")
        }
        return UploadSession(
            id: id, repository: try RepositoryName(parsing: row.text(1)), principal: row.optionalText(2),
            algorithm: algorithm, size: row.integer(4), createdAt: row.integer(5))
    }

    public func setUploadSize(_ id: UploadID, size: Int64) async throws {
        try await database.write { connection in
            try connection.query(
                "UPDATE upload_sessions SET size = ?, updated_at = ? WHERE id = ?",
                [.integer(size), .integer(UnixTime.seconds()), .text(id.value)])
        }
    }

    public func deleteUpload(_ id: UploadID) async throws {
        try await database.write(freesSpace: true) { connection in
            try connection.query("DELETE FROM upload_sessions WHERE id = ?", [.text(id.value)])
        }
    }
}
