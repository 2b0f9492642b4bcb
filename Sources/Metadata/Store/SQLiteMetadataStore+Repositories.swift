import OCI

extension SQLiteMetadataStore {
    public func repositoryExists(_ name: RepositoryName) throws -> Bool {
        try database.read { try $0.repositoryID(name) != nil }
    }

    public func repositoryNames(after last: String?, limit: Int) throws -> [RepositoryName] {
        let sql = "SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?"
        return try database.read { connection in
            try connection.rows(sql, [.text(last ?? ""), .integer(Int64(limit))]) { try RepositoryName(parsing: $0.text(0)) }
        }
    }
}
