import Auth
import FoundationEssentials
import Metadata
import NIOHTTP1
import OCI

/// Access for the real registry: basic auth with the staff-push rules, or the Docker
/// token flow with namespaces and roles.
///
/// ```swift
/// let basic = RegistryAccessPolicy(scheme: .basic, accounts: metadata)
/// let token = RegistryAccessPolicy(scheme: .token(tokens, realm: "https://registry.example/token"), accounts: metadata)
/// ```
public struct RegistryAccessPolicy: AccessPolicy, ImmediateAccess {
    public enum Scheme: Sendable {
        case basic
        /// `realm` is the absolute URL of `GET /token`.
        case token(TokenService, realm: String)
    }

    public let scheme: Scheme
    public let rules: AccessRules
    public let verifier: CredentialVerifier
    private let accounts: any AccountStore
    /// The `realm` of Basic challenges.
    private let basicRealm = "registryd"

    public init(scheme: Scheme, accounts: any AccountStore, verifier: CredentialVerifier? = nil) {
        self.scheme = scheme
        switch scheme {
        case .basic: rules = AccessRules(mode: .staffPush, accounts: accounts)
        case .token: rules = AccessRules(mode: .namespaces, accounts: accounts)
        }
        self.verifier = verifier ?? CredentialVerifier(accounts: accounts)
        self.accounts = accounts
    }

    public func authenticate(_ headers: HTTPHeaders, remoteAddress: String) async throws(RegistryError) -> Principal? {
        guard let authorization = headers.first(name: "Authorization") else { return nil }
        switch scheme {
        case .basic:
            guard let (name, password) = Self.basicCredentials(authorization) else { throw basicChallenge("malformed basic credentials") }
            // containers/image (podman, skopeo, buildah) answers a Basic challenge without
            // stored credentials with an empty user and password: that is anonymous.
            if name.isEmpty && password.isEmpty { return nil }
            return try await verifiedPrincipal(name: name, password: password, remoteAddress: remoteAddress)
        case .token(let tokens, _):
            guard let token = Self.credentials(authorization, scheme: "bearer") else {
                throw challenge(.unauthorized, "use a bearer token from the token endpoint", error: "invalid_token")
            }
            do {
                return try tokens.verify(token)
            } catch {
                throw challenge(.unauthorized, "the bearer token is not valid: \(error)", error: "invalid_token")
            }
        }
    }

    public func immediatePrincipal(_ headers: HTTPHeaders, remoteAddress: String) -> Principal?? {
        guard let authorization = headers.first(name: "Authorization") else { return .some(nil) }
        switch scheme {
        case .basic:
            guard let (name, password) = Self.basicCredentials(authorization) else { return nil }
            if name.isEmpty && password.isEmpty { return .some(nil) }
            guard let principal = verifier.recentlyVerified(name: name, password: password, from: remoteAddress) else { return nil }
            return .some(principal)
        case .token(let tokens, _):
            // Verifying a token is an HMAC: cheap, and in memory.
            guard let token = Self.credentials(authorization, scheme: "bearer"), let principal = try? tokens.verify(token) else {
                return nil
            }
            return .some(principal)
        }
    }

    public func immediatelyAllowsPull(_ principal: Principal?, on repository: RepositoryName, isPublic: Bool?) -> Bool {
        if let grants = principal?.tokenGrants { return grants[repository.value]?.contains(.pull) == true }
        if principal?.isStaff == true || isPublic == true { return true }
        // Basic auth lets every logged-in user pull; namespace roles need the database.
        return principal != nil && rules.mode == .staffPush
    }

    /// Checks `Authorization: Basic …`; also used by the token endpoint.
    public func basicPrincipal(_ authorization: String, remoteAddress: String) async throws(RegistryError) -> Principal {
        guard let (name, password) = Self.basicCredentials(authorization) else {
            throw basicChallenge("malformed basic credentials")
        }
        return try await verifiedPrincipal(name: name, password: password, remoteAddress: remoteAddress)
    }

    private func verifiedPrincipal(name: String, password: String, remoteAddress: String) async throws(RegistryError) -> Principal {
        switch await verifier.verify(name: name, password: password, from: remoteAddress) {
        case .authenticated(let principal):
            return principal
        case .rejected:
            throw basicChallenge("invalid username or password")
        case .throttled(let seconds):
            throw RegistryError(.tooManyRequests, status: .tooManyRequests, "too many failed logins from this address; retry later")
                .with(header: "Retry-After", String(seconds))
        }
    }

    public func allows(_ principal: Principal?, to action: RepositoryAction, on repository: RepositoryName) async -> Bool {
        if let grants = principal?.tokenGrants {
            return grants[repository.value]?.contains(action) == true
        }
        return await (try? rules.actions(for: principal, on: repository).contains(action)) ?? false
    }

    public func pushCreatesNamespace(_ principal: Principal?, on repository: RepositoryName) async throws -> Bool {
        guard let principal, principal.tokenGrants != nil else { return false }
        return try await rules.mustCreateOwnNamespace(of: principal, pushingTo: repository)
    }

    public func createNamespace(for principal: Principal?, on repository: RepositoryName) async throws {
        guard let principal else { return }
        try await rules.createOwnNamespace(of: principal, pushingTo: repository)
    }

    public func mayRead(_ principal: Principal?, _ repository: RepositoryName) async -> Bool {
        await (try? rules.actions(for: accountOf(principal), on: repository).contains(.pull)) ?? false
    }

    /// Who the rules judge: a token's caller is its subject's account as it is now (a
    /// disabled or deleted user is anonymous), anyone else is themselves.
    private func accountOf(_ principal: Principal?) async -> Principal? {
        guard let principal, principal.tokenGrants != nil else { return principal }
        guard let user = try? await accounts.user(named: principal.name), !user.isDisabled else { return nil }
        return Principal(name: user.name, isStaff: user.isStaff)
    }

    public func refusal(for principal: Principal?, action: RepositoryAction, needed: [RepositoryAction], on repository: RepositoryName)
        async -> RegistryError
    {
        let scope = "repository:\(repository.value):" + Set(needed).sorted().map(\.rawValue).joined(separator: ",")
        guard let principal else {
            return challenge(.unauthorized, "authentication required", scope: scope)
        }
        if principal.tokenGrants != nil, case .token(let tokens, let realm) = scheme,
            await (try? rules.actions(for: accountOf(principal), on: repository).isSuperset(of: needed)) == true
        {
            // The user may do it, only this token does not say so: 403 with the challenge
            // for the scope needed, error "insufficient_scope" (RFC 6750 §3.1). Clients
            // that understand it fetch a wider token and retry (ORAS does).
            return RegistryError(
                .denied, status: .forbidden, "requested access to the resource is denied",
                detail: "the token does not grant \(action.rawValue) on \(repository.value)"
            )
            .with(
                header: "WWW-Authenticate",
                Self.bearerChallenge(realm: realm, service: tokens.service, scope: scope, error: "insufficient_scope"))
        }
        if case .token = scheme, action == .pull {
            // Private means invisible: the same answer as for a repository that does not exist.
            return RegistryError.nameUnknown(repository.value)
        }
        let reason: String
        if principal.tokenGrants != nil {
            reason = "the token does not grant \(action.rawValue) on \(repository.value)"
        } else {
            reason = rules.denialReason(for: principal, action: action, on: repository)
        }
        return RegistryError(.denied, status: .forbidden, "requested access to the resource is denied", detail: reason)
    }

    public func baseRefusal(for principal: Principal?) -> RegistryError? {
        principal == nil ? challenge(.unauthorized, "authentication required") : nil
    }

    /// A 401 with the `WWW-Authenticate` challenge of the configured scheme.
    func challenge(_ code: RegistryErrorCode, _ message: String, scope: String? = nil, error: String? = nil) -> RegistryError {
        switch scheme {
        case .basic:
            return basicChallenge(message)
        case .token(let tokens, let realm):
            return RegistryError(code, status: .unauthorized, message)
                .with(header: "WWW-Authenticate", Self.bearerChallenge(realm: realm, service: tokens.service, scope: scope, error: error))
        }
    }

    /// `Bearer realm="…",service="…"[,scope="…"][,error="…"]` (Docker token spec).
    private static func bearerChallenge(realm: String, service: String, scope: String?, error: String?) -> String {
        var value = "Bearer realm=\"\(realm)\",service=\"\(service)\""
        if let scope { value += ",scope=\"\(scope)\"" }
        if let error { value += ",error=\"\(error)\"" }
        return value
    }

    private func basicChallenge(_ message: String) -> RegistryError {
        RegistryError(.unauthorized, status: .unauthorized, message).with(header: "WWW-Authenticate", "Basic realm=\"\(basicRealm)\"")
    }

    /// The user name and password of `Authorization: Basic …`, or `nil` when malformed.
    static func basicCredentials(_ authorization: String) -> (name: String, password: String)? {
        guard let encoded = credentials(authorization, scheme: "basic"),
            let decoded = Data(base64Encoded: encoded).flatMap({ String(data: $0, encoding: .utf8) }),
            let colon = decoded.firstIndex(of: ":")
        else { return nil }
        return (String(decoded[..<colon]), String(decoded[decoded.index(after: colon)...]))
    }

    /// The credentials after `<scheme> ` in an Authorization header, case-insensitively.
    static func credentials(_ header: String, scheme: String) -> String? {
        let parts = header.trimmingWhitespace().split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == scheme else { return nil }
        return String(parts[1].trimmingWhitespace())
    }
}
