import Auth
import FoundationEssentials
import HTTPTransport
import NIOHTTP1
import OCI

/// `GET /token?service=…&scope=…` (Docker token spec, "Requesting a Token"): checks
/// basic credentials, or none for an anonymous token, and signs a JWT listing only
/// the actions the access rules grant for each requested scope.
public struct TokenEndpoint: Sendable {
    let policy: RegistryAccessPolicy
    let tokens: TokenService
    /// Most scopes honoured in one request.
    private let maximumScopes = 32

    public init(policy: RegistryAccessPolicy, tokens: TokenService) {
        self.policy = policy
        self.tokens = tokens
    }

    func respond(to request: HTTPRequest, remoteAddress: String) async throws -> HTTPResponse {
        if let service = request.query["service"], service != tokens.service {
            throw RegistryError(.unsupported, status: .badRequest, "unknown service \(service.prefix(100))")
        }
        var principal: Principal?
        if let authorization = request.headers.first(name: "Authorization") {
            principal = try await policy.basicPrincipal(authorization, remoteAddress: remoteAddress)
        }
        // Scopes may repeat, and one parameter may hold several separated by spaces.
        let requested = request.query.all("scope").flatMap { $0.split(separator: " ").map(String.init) }.prefix(maximumScopes)
        var grants: [Scope] = []
        for text in requested {
            guard let scope = Scope(parsing: text) else { continue }
            let allowed = await (try? policy.rules.actions(for: principal, on: scope.repository)) ?? []
            grants.append(Scope(repository: scope.repository, actions: scope.actions.intersection(allowed)))
        }
        let issued = tokens.issue(subject: principal?.name, grants: grants)
        let body = TokenDocument(
            token: issued.token, access_token: issued.token, expires_in: issued.expiresIn,
            issued_at: issued.issuedAt.formatted(.iso8601))
        return .json(.ok, JSONText.encode(body), headers: ["Cache-Control": "no-store"])
    }
}

/// The token endpoint's answer (Docker token spec: `token`, and `access_token` for OAuth 2 clients).
private struct TokenDocument: Encodable {
    // The spec's names, sent as they are.
    let token: String
    let access_token: String
    let expires_in: Int
    let issued_at: String
}
