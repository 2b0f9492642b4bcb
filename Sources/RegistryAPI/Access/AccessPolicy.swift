import Auth
import NIOHTTP1
import OCI

/// Decides who the caller is and what they may do; every handler asks it before it
/// touches a repository, upload sessions and mount sources included.
///
/// `RegistryAccessPolicy` is the real one (basic or token auth over `Auth`); tests
/// that are about the protocol rather than access use an open policy.
public protocol AccessPolicy: Sendable {
    /// The caller, `nil` when anonymous.
    /// - Throws: `RegistryError` — 401 with a challenge for wrong credentials, 429 when
    ///   the address is throttled.
    func authenticate(_ headers: HTTPHeaders, remoteAddress: String) async throws(RegistryError) -> Principal?

    /// Whether this request may do `action` (with token auth: whether its token grants it).
    func allows(_ principal: Principal?, to action: RepositoryAction, on repository: RepositoryName) async -> Bool

    /// Whether the caller may read `repository` at all, judged by the rules rather
    /// than by what one token carries: decides what `_catalog` lists and where a
    /// `mount` without `from` may take a blob from.
    func mayRead(_ principal: Principal?, _ repository: RepositoryName) async -> Bool

    /// The error for a caller that may not do `action`, one of the `needed` actions of
    /// the request: 401 with a challenge naming `needed` for an anonymous caller (and,
    /// with token auth, for a token that lacks what its user may do: a new token helps),
    /// otherwise 403 `DENIED` (or 404 where even existence is private).
    func refusal(for principal: Principal?, action: RepositoryAction, needed: [RepositoryAction], on repository: RepositoryName) async
        -> RegistryError

    /// `nil` when the caller may use `GET /v2/`; otherwise the 401 that starts a login.
    func baseRefusal(for principal: Principal?) -> RegistryError?

    /// Whether a push `allows` permitted must first create the caller's own namespace
    /// (with token auth a user's namespace comes into being with their first push). A read.
    func pushCreatesNamespace(_ principal: Principal?, on repository: RepositoryName) async throws -> Bool

    /// Creates the caller's own namespace for that push. A write; a failure fails
    /// the request.
    func createNamespace(for principal: Principal?, on repository: RepositoryName) async throws
}

extension AccessPolicy {
    /// Without namespaces, a push needs nothing created.
    public func pushCreatesNamespace(_ principal: Principal?, on repository: RepositoryName) async throws -> Bool { false }
    public func createNamespace(for principal: Principal?, on repository: RepositoryName) async throws {}
}

/// The part of access that memory alone can decide, for the immediate path
/// (`ImmediateReads`): no password hashing, no database. Every "don't know" sends the
/// request down the full path, where `AccessPolicy` decides.
public protocol ImmediateAccess: Sendable {
    /// The caller when memory alone tells: `.some(nil)` for an anonymous request. `nil`
    /// when only `AccessPolicy.authenticate` can decide, refusals included (they need
    /// their error answers).
    func immediatePrincipal(_ headers: HTTPHeaders, remoteAddress: String) -> Principal??

    /// `true` when pulling from `repository` is certainly allowed from memory alone;
    /// `isPublic` is the repository's visibility when it is cached. `false` means "ask
    /// `AccessPolicy.allows`", never "denied".
    func immediatelyAllowsPull(_ principal: Principal?, on repository: RepositoryName, isPublic: Bool?) -> Bool
}
