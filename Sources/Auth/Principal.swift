import OCI

/// Who is calling, once their credentials were checked.
public struct Principal: Sendable, Hashable {
    public let name: String
    public let isStaff: Bool
    /// With token auth: what the bearer token grants, per repository. `nil` with basic
    /// auth, where the rules are asked afresh for every request.
    public let tokenGrants: [String: Set<RepositoryAction>]?

    public init(name: String, isStaff: Bool, tokenGrants: [String: Set<RepositoryAction>]? = nil) {
        self.name = name
        self.isStaff = isStaff
        self.tokenGrants = tokenGrants
    }
}

/// What a request wants to do to a repository (the token spec's actions; `delete` as
/// distribution names it).
public enum RepositoryAction: String, Sendable, Hashable, CaseIterable, Comparable {
    case pull, push, delete

    public static func < (lhs: RepositoryAction, rhs: RepositoryAction) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}
