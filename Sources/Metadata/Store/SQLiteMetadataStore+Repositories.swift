import OCI

extension SQLiteMetadataStore {
    public func repositoryNames(after last: String?, limit: Int) async throws -> [RepositoryName] {
        let sql = "SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?"
        return try database.read { connection in
            try connection.rows(sql, [.text(last ?? ""), .integer(Int64(limit))]) { try RepositoryName(parsing: $0.text(0)) }
        }
    }

    public func statistics() async throws -> MetadataStatistics {
        let sql = """
            SELECT (SELECT count(*) FROM repositories), (SELECT count(*) FROM blobs), (SELECT coalesce(sum(size), 0) FROM blobs),
                   (SELECT count(*) FROM manifests), (SELECT count(*) FROM tags), (SELECT count(*) FROM upload_sessions)
            """
        return try database.read { connection in
            try connection.first(sql) { row in
                MetadataStatistics(
                    repositories: Int(row.integer(0)), blobs: Int(row.integer(1)), blobBytes: row.integer(2),
                    manifests: Int(row.integer(3)), tags: Int(row.integer(4)), uploads: Int(row.integer(5)))
            } ?? MetadataStatistics(repositories: 0, blobs: 0, blobBytes: 0, manifests: 0, tags: 0, uploads: 0)
        }
    }
}
