import NIOHTTP1
import OCI

/// Who is calling: a user name once authentication exists.
public struct Principal: Sendable, Hashable {
    public let name: String
    public let isStaff: Bool

    public init(name: String, isStaff: Bool) {
        self.name = name
        self.isStaff = isStaff
    }
}

/// What a request wants to do to a repository (the token spec's actions).
public enum RepositoryAction: String, Sendable {
    case pull, push, delete
}

/// Decides who the caller is and what they may do; every handler asks it before it
/// touches a repository, upload sessions and mount sources included.
///
/// The authentication issue supplies the real policies (basic and token auth);
/// `OpenAccessPolicy` lets everyone do everything, for a registry on loopback.
public protocol AccessPolicy: Sendable {
    /// The caller, `nil` when anonymous.
    /// - Throws: `RegistryError` (401 with a challenge) when credentials are wrong.
    func authenticate(_ headers: HTTPHeaders, remoteAddress: String) async throws(RegistryError) -> Principal?

    func allows(_ principal: Principal?, to action: RepositoryAction, on repository: RepositoryName) async -> Bool

    /// The error for a caller that may not do `action`: 401 with a challenge for an
    /// anonymous caller, 403 `DENIED` otherwise.
    func refusal(for principal: Principal?, action: RepositoryAction, on repository: RepositoryName) -> RegistryError
}

/// Everyone may pull, push and delete. The default until authentication is configured.
public struct OpenAccessPolicy: AccessPolicy {
    public init() {}

    public func authenticate(_ headers: HTTPHeaders, remoteAddress: String) async throws(RegistryError) -> Principal? { nil }

    public func allows(_ principal: Principal?, to action: RepositoryAction, on repository: RepositoryName) async -> Bool { true }

    public func refusal(for principal: Principal?, action: RepositoryAction, on repository: RepositoryName) -> RegistryError {
        RegistryError(.denied, status: .forbidden, "requested access to the resource is denied")
    }
}
