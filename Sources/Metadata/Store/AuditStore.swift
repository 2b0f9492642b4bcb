/// The audit table: every administrative change, with who made it and when.
public protocol AuditStore: Sendable {
    /// `params` is JSON text with secrets already removed.
    func recordAudit(actor: String, method: String, params: String?) async throws
    /// The newest entries first, at most `limit`.
    func auditEntries(limit: Int) async throws -> [AuditEntry]
    /// Removes at most `limit` entries recorded before `time` (Unix seconds), oldest first.
    /// - Returns: how many it removed.
    func pruneAudit(before time: Int64, limit: Int) async throws -> Int
}

public struct AuditEntry: Sendable, Equatable {
    public let at: Int64
    public let actor: String
    public let method: String
    public let params: String?
}

extension SQLiteMetadataStore {
    public func recordAudit(actor: String, method: String, params: String?) async throws {
        try await database.write { connection in
            try connection.query(
                "INSERT INTO audit_log (at, actor, method, params) VALUES (?, ?, ?, ?)",
                [.integer(UnixTime.seconds()), .text(actor), .text(method), .optional(params)])
        }
    }

    public func auditEntries(limit: Int) async throws -> [AuditEntry] {
        try database.read { connection in
            try connection.rows("SELECT at, actor, method, params FROM audit_log ORDER BY id DESC LIMIT ?", [.integer(Int64(limit))]) {
                row in
                AuditEntry(at: row.integer(0), actor: row.text(1), method: row.text(2), params: row.optionalText(3))
            }
        }
    }

    public func pruneAudit(before time: Int64, limit: Int) async throws -> Int {
        try await database.write(freesSpace: true) { connection in
            try connection.query(
                "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?)",
                [.integer(time), .integer(Int64(limit))])
            return connection.changes
        }
    }
}
