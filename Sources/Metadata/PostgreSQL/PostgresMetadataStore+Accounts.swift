import OCI
import PostgresNIO

extension PostgresMetadataStore {
    public var accountGeneration: Int { accountChanges.value }

    private func accountChanged() { accountChanges.bump() }

    public func createUser(name: String, passwordHash: String, isStaff: Bool) async throws(AccountStoreError) {
        try await accountWrite { connection in
            let now = UnixTime.seconds()
            let created = try await connection.run(
                """
                INSERT INTO users (name, password_hash, is_staff, created_at, updated_at) VALUES (\(name), \(passwordHash), \(isStaff), \(now), \(now))
                ON CONFLICT (name) DO NOTHING RETURNING 1
                """)
            if created == 0 { throw AccountStoreError.userExists(name) }
        }
    }

    public func user(named name: String) async throws -> StoredUser? {
        try await database.read { connection in
            try await connection.first(UserByName.self, name, row: Self.storedUser)
        }
    }

    /// Each request whose credentials are not cached yet (or changed) reads one.
    enum UserByName: HotStatement {
        static let sql = "SELECT name, password_hash, is_staff, is_disabled, created_at FROM users WHERE name = $1"
    }

    public func users() async throws -> [StoredUser] {
        try await database.read { connection in
            try await connection.rows(
                #"SELECT name, password_hash, is_staff, is_disabled, created_at FROM users ORDER BY name COLLATE "C""#, Self.storedUser)
        }
    }

    public func setPasswordHash(_ hash: String, forUser name: String) async throws -> Bool {
        try await changeUser(
            "UPDATE users SET password_hash = \(hash), updated_at = \(UnixTime.seconds()) WHERE name = \(name) RETURNING 1")
    }

    public func setStaff(_ isStaff: Bool, forUser name: String) async throws -> Bool {
        try await changeUser("UPDATE users SET is_staff = \(isStaff), updated_at = \(UnixTime.seconds()) WHERE name = \(name) RETURNING 1")
    }

    public func setDisabled(_ isDisabled: Bool, forUser name: String) async throws -> Bool {
        try await changeUser(
            "UPDATE users SET is_disabled = \(isDisabled), updated_at = \(UnixTime.seconds()) WHERE name = \(name) RETURNING 1")
    }

    public func deleteUser(named name: String) async throws -> Bool {
        try await changeUser("DELETE FROM users WHERE name = \(name) RETURNING 1")
    }

    public func role(of user: String, in namespace: String) async throws -> NamespaceRole? {
        try await database.read { connection in
            try await connection.first(
                """
                SELECT m.role FROM namespace_members m
                JOIN namespaces n ON n.id = m.namespace_id JOIN users u ON u.id = m.user_id
                WHERE u.name = \(user) AND n.name = \(namespace)
                """
            ) { NamespaceRole(rawValue: try $0.decode(String.self)) } ?? nil
        }
    }

    public func grant(_ role: NamespaceRole, on namespace: String, to user: String) async throws(AccountStoreError) {
        try await accountWrite { connection in
            guard let userID = try await connection.first("SELECT id FROM users WHERE name = \(user)", { try $0.decode(Int64.self) }) else {
                throw AccountStoreError.userUnknown(user)
            }
            var namespaceID = try await connection.first("SELECT id FROM namespaces WHERE name = \(namespace)") {
                try $0.decode(Int64.self)
            }
            if namespaceID == nil {
                namespaceID = try await connection.first(
                    "INSERT INTO namespaces (name, created_at) VALUES (\(namespace), \(UnixTime.seconds())) RETURNING id"
                ) { try $0.decode(Int64.self) }
            }
            try await connection.query(
                """
                INSERT INTO namespace_members (namespace_id, user_id, role) VALUES (\(namespaceID ?? 0), \(userID), \(role.rawValue))
                ON CONFLICT (namespace_id, user_id) DO UPDATE SET role = excluded.role
                """, logger: connection.logger)
        }
    }

    public func revoke(namespace: String, from user: String) async throws -> Bool {
        try await changeUser(
            """
            DELETE FROM namespace_members
            WHERE namespace_id = (SELECT id FROM namespaces WHERE name = \(namespace)) AND user_id = (SELECT id FROM users WHERE name = \(user))
            RETURNING 1
            """)
    }

    public func namespaceExists(_ namespace: String) async throws -> Bool {
        try await database.read { connection in
            try await connection.first("SELECT 1 FROM namespaces WHERE name = \(namespace)") { _ in true } ?? false
        }
    }

    public func namespaces() async throws -> [NamespaceMembers] {
        let rows = try await database.read { connection in
            try await connection.rows(
                """
                SELECT n.name, u.name, m.role FROM namespaces n
                LEFT JOIN namespace_members m ON m.namespace_id = n.id LEFT JOIN users u ON u.id = m.user_id
                ORDER BY n.name COLLATE "C", u.name COLLATE "C"
                """
            ) { try $0.decode((String, String?, String?).self) }
        }
        return NamespaceMembers.grouped(rows)
    }

    public func isPublic(_ repository: RepositoryName) async throws -> Bool {
        try await database.cachedRead(HotReadKey.visibility(repository)) { connection in
            try await connection.first(IsPublic.self, repository.value) { try $0.decode(Bool.self) } ?? false
        }
    }

    enum IsPublic: HotStatement {
        static let sql = "SELECT is_public FROM repositories WHERE name = $1"
    }

    public func setPublic(_ isPublic: Bool, repository: RepositoryName) async throws -> Bool {
        try await changeUser("UPDATE repositories SET is_public = \(isPublic) WHERE name = \(repository.value) RETURNING 1")
    }

    /// Runs one statement that changes accounts or visibility. - Returns: whether it changed a row.
    private func changeUser(_ query: PostgresQuery) async throws -> Bool {
        let changed = try await database.write { connection in try await connection.run(query) > 0 }
        accountChanged()
        return changed
    }

    private func accountWrite(_ body: (PostgresConnection) async throws -> Void) async throws(AccountStoreError) {
        do {
            try await database.write(body)
        } catch let error as AccountStoreError {
            throw error
        } catch let error as MetadataError {
            throw .metadata(error)
        } catch {
            throw .metadata(.backend(MetadataBackendError(code: nil, underlying: error)))
        }
        accountChanged()
    }

    private static func storedUser(_ row: PostgresRow) throws -> StoredUser {
        let (name, hash, isStaff, isDisabled, createdAt) = try row.decode((String, String, Bool, Bool, Int64).self)
        return StoredUser(name: name, passwordHash: hash, isStaff: isStaff, isDisabled: isDisabled, createdAt: createdAt)
    }
}
