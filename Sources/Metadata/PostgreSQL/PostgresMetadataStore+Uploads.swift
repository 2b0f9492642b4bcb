import OCI
import PostgresNIO

extension PostgresMetadataStore {
    public func createUpload(_ session: UploadSession) async throws {
        // Not durable on its own, as on SQLite: a session lost with the database server has
        // no acknowledged bytes yet.
        try await database.write(durable: false) { connection in
            let repositoryID = try await connection.ensureRepository(session.repository)
            try await connection.run(
                CreateUpload.self, session.id.value, repositoryID, session.principal, session.algorithm.rawValue, session.size,
                session.createdAt)
        }
    }

    enum CreateUpload: HotStatement {
        static let sql = """
            INSERT INTO upload_sessions (id, repository_id, principal, digest_algorithm, size, created_at, updated_at)
            VALUES ($1, $2, $3::text, $4, $5, $6, $6)
            """
    }

    public func uploadCount(principal: String?) async throws -> Int {
        try await database.read { connection in
            try await connection.first(UploadCount.self, principal) { Int(try $0.decode(Int64.self)) } ?? 0
        }
    }

    enum UploadCount: HotStatement {
        static let sql = "SELECT count(*) FROM upload_sessions WHERE principal IS NOT DISTINCT FROM $1::text"
    }

    public func upload(_ id: UploadID) async throws -> UploadSession? {
        try await database.read { connection in
            try await connection.first(UploadByID.self, id.value, row: Self.uploadSession)
        }
    }

    enum UploadByID: HotStatement {
        static let sql = """
            SELECT \(PostgresMetadataStore.uploadSessionColumns)
            FROM upload_sessions u JOIN repositories r ON r.id = u.repository_id WHERE u.id = $1
            """
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
            try await connection.run(SetUploadSize.self, size, UnixTime.seconds(), id.value)
        }
    }

    enum SetUploadSize: HotStatement {
        static let sql = "UPDATE upload_sessions SET size = $1, updated_at = $2 WHERE id = $3"
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
