import OCI
import PostgresNIO

extension PostgresMetadataStore {
    public func createUpload(_ session: UploadSession) async throws {
        // Not durable on its own, as on SQLite: a session lost with the database server has
        // no acknowledged bytes yet.
        try await database.write(durable: false) { connection in
            let repositoryID = try await connection.ensureRepository(session.repository)
            try await connection.query(
                """
                INSERT INTO upload_sessions (id, repository_id, principal, digest_algorithm, size, created_at, updated_at)
                VALUES (\(session.id.value), \(repositoryID), \(session.principal), \(session.algorithm.rawValue), \(session.size),
                        \(session.createdAt), \(session.createdAt))
                """, logger: connection.logger)
        }
    }

    public func uploadCount(principal: String?) async throws -> Int {
        try await database.read { connection in
            try await connection.first(
                "SELECT count(*) FROM upload_sessions WHERE principal IS NOT DISTINCT FROM \(principal)::text"
            ) { Int(try $0.decode(Int64.self)) } ?? 0
        }
    }

    public func upload(_ id: UploadID) async throws -> UploadSession? {
        try await database.read { connection in
            try await connection.first(
                """
                SELECT \(unescaped: Self.uploadSessionColumns)
                FROM upload_sessions u JOIN repositories r ON r.id = u.repository_id WHERE u.id = \(id.value)
                """, Self.uploadSession)
        }
    }

    /// The columns `uploadSession(from:)` reads, first in a row, in this order.
    static let uploadSessionColumns = "u.id, r.name, u.principal, u.digest_algorithm, u.size, u.created_at"

    /// An upload session from a row that starts with `uploadSessionColumns` (an unknown
    /// algorithm is a damaged row, as on SQLite).
    static func uploadSession(from row: PostgresRow) throws -> UploadSession {
        var columns = row.makeIterator()
        func next<T: PostgresDecodable>(_ type: T.Type) throws -> T {
            guard let cell = columns.next() else { throw MetadataError.damagedRow("an upload row is missing columns") }
            return try cell.decode(T.self)
        }
        let id = try UploadID(parsing: next(String.self))
        let repository = try next(String.self)
        let principal = try next(String?.self)
        let algorithmName = try next(String.self)
        guard let algorithm = DigestAlgorithm(rawValue: algorithmName) else {
            throw MetadataError.damagedRow("upload \(id.value) names the digest algorithm \(algorithmName)")
        }
        return UploadSession(
            id: id, repository: try RepositoryName(parsing: repository), principal: principal, algorithm: algorithm,
            size: try next(Int64.self), createdAt: try next(Int64.self))
    }

    public func setUploadSize(_ id: UploadID, size: Int64) async throws {
        try await database.write { connection in
            try await connection.query(
                "UPDATE upload_sessions SET size = \(size), updated_at = \(UnixTime.seconds()) WHERE id = \(id.value)",
                logger: connection.logger)
        }
    }

    public func deleteUpload(_ id: UploadID) async throws {
        try await database.write { connection in
            try await connection.query("DELETE FROM upload_sessions WHERE id = \(id.value)", logger: connection.logger)
        }
    }

    public func repositoryNames(after last: String?, limit: Int) async throws -> [RepositoryName] {
        try await database.read { connection in
            try await connection.rows(
                #"SELECT name FROM repositories WHERE name COLLATE "C" > \#(last ?? "") ORDER BY name COLLATE "C" LIMIT \#(limit)"#
            ) { try RepositoryName(parsing: $0.decode(String.self)) }
        }
    }

    public func statistics() async throws -> MetadataStatistics {
        try await database.read { connection in
            try await connection.first(
                """
                SELECT (SELECT count(*) FROM repositories), (SELECT count(*) FROM blobs), (SELECT coalesce(sum(size), 0)::bigint FROM blobs),
                       (SELECT count(*) FROM manifests), (SELECT count(*) FROM tags), (SELECT count(*) FROM upload_sessions)
                """
            ) { row in
                let (repositories, blobs, bytes, manifests, tags, uploads) = try row.decode((Int64, Int64, Int64, Int64, Int64, Int64).self)
                return MetadataStatistics(
                    repositories: Int(repositories), blobs: Int(blobs), blobBytes: bytes, manifests: Int(manifests), tags: Int(tags),
                    uploads: Int(uploads))
            } ?? MetadataStatistics(repositories: 0, blobs: 0, blobBytes: 0, manifests: 0, tags: 0, uploads: 0)
        }
    }
}
