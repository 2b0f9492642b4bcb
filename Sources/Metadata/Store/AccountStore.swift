import OCI

/// Users, namespaces and roles, and which repositories are public: what access
/// decisions are made from. SQL stays in the Metadata layer; the rules live in `Auth`.
public protocol AccountStore: Sendable {
    func createUser(name: String, passwordHash: String, isStaff: Bool) async throws(AccountStoreError)
    func user(named name: String) async throws -> StoredUser?
    func users() async throws -> [StoredUser]
    /// - Returns: whether the user exists.
    func setPasswordHash(_ hash: String, forUser name: String) async throws -> Bool
    func setStaff(_ isStaff: Bool, forUser name: String) async throws -> Bool
    func setDisabled(_ isDisabled: Bool, forUser name: String) async throws -> Bool
    func deleteUser(named name: String) async throws -> Bool

    /// The role a user holds on a namespace, if any.
    func role(of user: String, in namespace: String) async throws -> NamespaceRole?
    /// Gives `user` `role` on `namespace`, creating the namespace when missing.
    func grant(_ role: NamespaceRole, on namespace: String, to user: String) async throws(AccountStoreError)
    func revoke(namespace: String, from user: String) async throws -> Bool
    func namespaceExists(_ namespace: String) async throws -> Bool
    /// Namespaces with their members, in order.
    func namespaces() async throws -> [NamespaceMembers]

    func isPublic(_ repository: RepositoryName) async throws -> Bool
    /// - Returns: whether the repository exists.
    func setPublic(_ isPublic: Bool, repository: RepositoryName) async throws -> Bool

    /// Grows whenever any user, role or visibility changes through this store, so a
    /// cache of access decisions can tell at once that it may be stale.
    var accountGeneration: Int { get }
}

public struct StoredUser: Sendable, Equatable {
    public let name: String
    public let passwordHash: String
    public let isStaff: Bool
    public let isDisabled: Bool
    public let createdAt: Int64
}

public enum NamespaceRole: String, Sendable, CaseIterable, Comparable {
    case consumer, collaborator, owner

    public static func < (lhs: NamespaceRole, rhs: NamespaceRole) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

public struct NamespaceMembers: Sendable, Equatable {
    public let namespace: String
    public let members: [String: NamespaceRole]

    /// Namespaces from rows of (namespace, member, role) in namespace order; a namespace
    /// without members comes as one row with no member.
    static func grouped(_ rows: [(String, String?, String?)]) -> [NamespaceMembers] {
        var result: [NamespaceMembers] = []
        for (namespace, user, role) in rows {
            if result.last?.namespace != namespace { result.append(NamespaceMembers(namespace: namespace, members: [:])) }
            if let user, let role = role.flatMap(NamespaceRole.init(rawValue:)) {
                var members = result.removeLast().members
                members[user] = role
                result.append(NamespaceMembers(namespace: namespace, members: members))
            }
        }
        return result
    }
}

public enum AccountStoreError: Error, Equatable {
    case userExists(String)
    case userUnknown(String)
    /// The store failed (the cause is kept in the `MetadataError`).
    case metadata(MetadataError)
}
