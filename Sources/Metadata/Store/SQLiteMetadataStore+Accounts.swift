import OCI

extension SQLiteMetadataStore {
    public var accountGeneration: Int { accountChanges.load(ordering: .acquiring) }

    private func accountChanged() { accountChanges.add(1, ordering: .releasing) }

    public func createUser(name: String, passwordHash: String, isStaff: Bool) async throws(AccountStoreError) {
        do {
            try await database.write { connection in
                if try connection.first("SELECT 1 FROM users WHERE name = ?", [.text(name)], { _ in true }) != nil {
                    throw AccountStoreError.userExists(name)
                }
                let now = UnixTime.seconds()
                try connection.query(
                    "INSERT INTO users (name, password_hash, is_staff, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                    [.text(name), .text(passwordHash), .integer(isStaff ? 1 : 0), .integer(now), .integer(now)])
            }
        } catch let error as AccountStoreError {
            throw error
        } catch {
            throw .metadata(MetadataError(error))
        }
        accountChanged()
    }

    public func user(named name: String) async throws -> StoredUser? {
        try database.read { connection in
            try connection.first(
                "SELECT name, password_hash, is_staff, is_disabled, created_at FROM users WHERE name = ?", [.text(name)], Self.storedUser)
        }
    }

    public func users() async throws -> [StoredUser] {
        try database.read { connection in
            try connection.rows(
                "SELECT name, password_hash, is_staff, is_disabled, created_at FROM users ORDER BY name", [], Self.storedUser)
        }
    }

    public func setPasswordHash(_ hash: String, forUser name: String) async throws -> Bool {
        try await updateUser("UPDATE users SET password_hash = ?, updated_at = ? WHERE name = ?", .text(hash), name)
    }

    public func setStaff(_ isStaff: Bool, forUser name: String) async throws -> Bool {
        try await updateUser("UPDATE users SET is_staff = ?, updated_at = ? WHERE name = ?", .integer(isStaff ? 1 : 0), name)
    }

    public func setDisabled(_ isDisabled: Bool, forUser name: String) async throws -> Bool {
        try await updateUser("UPDATE users SET is_disabled = ?, updated_at = ? WHERE name = ?", .integer(isDisabled ? 1 : 0), name)
    }

    public func deleteUser(named name: String) async throws -> Bool {
        let deleted = try await database.write { connection in
            try connection.query("DELETE FROM users WHERE name = ?", [.text(name)])
            return connection.changes > 0
        }
        accountChanged()
        return deleted
    }

    public func role(of user: String, in namespace: String) async throws -> NamespaceRole? {
        let sql = """
            SELECT m.role FROM namespace_members m
            JOIN namespaces n ON n.id = m.namespace_id JOIN users u ON u.id = m.user_id
            WHERE u.name = ? AND n.name = ?
            """
        return try database.read { connection in
            try connection.first(sql, [.text(user), .text(namespace)]) { NamespaceRole(rawValue: $0.text(0)) } ?? nil
        }
    }

    public func grant(_ role: NamespaceRole, on namespace: String, to user: String) async throws(AccountStoreError) {
        do {
            try await database.write { connection in
                guard let userID = try connection.first("SELECT id FROM users WHERE name = ?", [.text(user)], { $0.integer(0) }) else {
                    throw AccountStoreError.userUnknown(user)
                }
                let namespaceID = try connection.first(
                    """
                    INSERT INTO namespaces (name, created_at) VALUES (?, ?)
                    ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id
                    """, [.text(namespace), .integer(UnixTime.seconds())]
                ) { $0.integer(0) }
                try connection.query(
                    """
                    INSERT INTO namespace_members (namespace_id, user_id, role) VALUES (?, ?, ?)
                    ON CONFLICT (namespace_id, user_id) DO UPDATE SET role = excluded.role
                    """, [.integer(namespaceID ?? 0), .integer(userID), .text(role.rawValue)])
            }
        } catch let error as AccountStoreError {
            throw error
        } catch {
            throw .metadata(MetadataError(error))
        }
        accountChanged()
    }

    public func revoke(namespace: String, from user: String) async throws -> Bool {
        let sql = """
            DELETE FROM namespace_members
            WHERE namespace_id = (SELECT id FROM namespaces WHERE name = ?) AND user_id = (SELECT id FROM users WHERE name = ?)
            """
        let revoked = try await database.write { connection in
            try connection.query(sql, [.text(namespace), .text(user)])
            return connection.changes > 0
        }
        accountChanged()
        return revoked
    }

    public func namespaceExists(_ namespace: String) async throws -> Bool {
        try database.read { try $0.first("SELECT 1 FROM namespaces WHERE name = ?", [.text(namespace)]) { _ in true } ?? false }
    }

    public func namespaces() async throws -> [NamespaceMembers] {
        let sql = """
            SELECT n.name, u.name, m.role FROM namespaces n
            LEFT JOIN namespace_members m ON m.namespace_id = n.id LEFT JOIN users u ON u.id = m.user_id
            ORDER BY n.name, u.name
            """
        let rows = try database.read { connection in
            try connection.rows(sql) { ($0.text(0), $0.optionalText(1), $0.optionalText(2)) }
        }
        return NamespaceMembers.grouped(rows)
    }

    public func isPublic(_ repository: RepositoryName) async throws -> Bool {
        try database.cachedRead(HotReadKey.visibility(repository)) { connection in
            try connection.first("SELECT is_public FROM repositories WHERE name = ?", [.text(repository.value)]) { $0.integer(0) != 0 }
                ?? false
        }
    }

    public func setPublic(_ isPublic: Bool, repository: RepositoryName) async throws -> Bool {
        let changed = try await database.write { connection in
            try connection.query(
                "UPDATE repositories SET is_public = ? WHERE name = ?", [.integer(isPublic ? 1 : 0), .text(repository.value)])
            return connection.changes > 0
        }
        accountChanged()
        return changed
    }

    private func updateUser(_ sql: String, _ value: SQLiteValue, _ name: String) async throws -> Bool {
        let changed = try await database.write { connection in
            try connection.query(sql, [value, .integer(UnixTime.seconds()), .text(name)])
            return connection.changes > 0
        }
        accountChanged()
        return changed
    }

    private static func storedUser(_ row: SQLiteRow) -> StoredUser {
        StoredUser(
            name: row.text(0), passwordHash: row.text(1), isStaff: row.integer(2) != 0, isDisabled: row.integer(3) != 0,
            createdAt: row.integer(4))
    }
}
