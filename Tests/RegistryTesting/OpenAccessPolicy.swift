import Auth
import NIOHTTP1
import OCI
import RegistryAPI

/// Everyone may do everything: for tests about the protocol, not about access.
/// The daemon never uses it.
public struct OpenAccessPolicy: AccessPolicy, ImmediateAccess {
    public init() {}

    public func authenticate(_ headers: HTTPHeaders, remoteAddress: String) async throws(RegistryError) -> Principal? { nil }

    public func allows(_ principal: Principal?, to action: RepositoryAction, on repository: RepositoryName) async -> Bool { true }

    public func mayRead(_ principal: Principal?, _ repository: RepositoryName) async -> Bool { true }

    public func refusal(for principal: Principal?, action: RepositoryAction, needed: [RepositoryAction], on repository: RepositoryName)
        async -> RegistryError
    {
        RegistryError(.denied, status: .forbidden, "requested access to the resource is denied")
    }

    public func baseRefusal(for principal: Principal?) -> RegistryError? { nil }

    public func immediatePrincipal(_ headers: HTTPHeaders, remoteAddress: String) -> Principal?? { .some(nil) }

    public func immediatelyAllowsPull(_ principal: Principal?, on repository: RepositoryName, isPublic: Bool?) -> Bool { true }
}
