import Foundation
import OCI

/// Issues and verifies the registry's bearer tokens: JWTs signed with HS256 by the
/// daemon's own key (Docker token spec; RFC 7519).
///
/// ```swift
/// let tokens = TokenService(key: key, service: "registryd", issuer: "registryd")
/// let issued = tokens.issue(subject: "alice", grants: [scope])
/// let verified = try tokens.verify(issued.token)
/// ```
///
/// Verification pins the algorithm (`HS256` only: `none` and every other value are
/// refused) and the key; a header that names or carries a key (`jwk`, `jku`, `x5c`,
/// `x5u`) is refused outright (CVE-2025-24976).
public struct TokenService: Sendable {
    public let key: TokenSigningKey
    public let service: String
    public let issuer: String
    /// Seconds a token is valid. Clients fetch a new one when it runs out; a request
    /// that started with a valid token finishes with it.
    public let lifetime: Int
    private static let allowedAlgorithm = "HS256"
    private static let keyCarryingHeaders = ["jwk", "jku", "x5c", "x5u"]

    public init(key: TokenSigningKey, service: String, issuer: String, lifetime: Int = 300) {
        self.key = key
        self.service = service
        self.issuer = issuer
        self.lifetime = lifetime
    }

    public struct IssuedToken: Sendable {
        public let token: String
        public let expiresIn: Int
        public let issuedAt: Date
    }

    public func issue(subject: String?, grants: [Scope], now: Date = Date()) -> IssuedToken {
        let issuedAt = Int64(now.timeIntervalSince1970)
        let claims = Claims(
            iss: issuer, sub: subject ?? "", aud: service, exp: issuedAt + Int64(lifetime), nbf: issuedAt - 1, iat: issuedAt,
            jti: UUID().uuidString.lowercased(),
            access: grants.filter { !$0.actions.isEmpty }.map { Access(type: "repository", name: $0.repository.value, actions: $0.actions.sorted().map(\.rawValue)) })
        let header = Header(typ: "JWT", alg: Self.allowedAlgorithm, kid: key.id)
        let signingInput = Base64URL.encode(Self.json(header)) + "." + Base64URL.encode(Self.json(claims))
        let signature = Base64URL.encode(key.sign(Array(signingInput.utf8)))
        return IssuedToken(token: signingInput + "." + signature, expiresIn: lifetime, issuedAt: now)
    }

    /// The principal a token speaks for, with what it grants.
    public func verify(_ token: String, now: Date = Date()) throws(TokenError) -> Principal {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, token.utf8.count <= 16 * 1024,
              let headerBytes = Base64URL.decode(parts[0]), let claimBytes = Base64URL.decode(parts[1]), let signature = Base64URL.decode(parts[2])
        else { throw .malformed }
        guard let header = try? JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any] else { throw .malformed }
        guard header["alg"] as? String == Self.allowedAlgorithm else { throw .algorithmNotAllowed }
        guard Self.keyCarryingHeaders.allSatisfy({ header[$0] == nil }) else { throw .embeddedKey }
        guard header["kid"] as? String == key.id else { throw .unknownKey }
        guard key.isValid(signature, for: Array((parts[0] + "." + parts[1]).utf8)) else { throw .badSignature }
        guard let claims = try? JSONDecoder().decode(Claims.self, from: Data(claimBytes)) else { throw .malformed }
        let time = Int64(now.timeIntervalSince1970)
        guard claims.exp > time, claims.nbf <= time + 5 else { throw .expired }
        guard claims.aud == service, claims.iss == issuer else { throw .wrongAudience }
        var grants: [String: Set<RepositoryAction>] = [:]
        for access in claims.access where access.type == "repository" {
            grants[access.name, default: []].formUnion(access.actions.compactMap(RepositoryAction.init(rawValue:)))
        }
        return Principal(name: claims.sub, isStaff: false, tokenGrants: grants)
    }

    private struct Header: Codable {
        let typ: String
        let alg: String
        let kid: String
    }

    private struct Claims: Codable {
        let iss: String
        let sub: String
        let aud: String
        let exp: Int64
        let nbf: Int64
        let iat: Int64
        let jti: String
        let access: [Access]
    }

    private struct Access: Codable {
        let type: String
        let name: String
        let actions: [String]
    }

    private static func json(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(value)) ?? Data())
    }
}

public enum TokenError: Error, Equatable {
    case malformed
    case algorithmNotAllowed
    case embeddedKey
    case unknownKey
    case badSignature
    case expired
    case wrongAudience
}

/// Base64 with the URL alphabet and no padding (RFC 7515 §2).
enum Base64URL {
    static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard !base64.contains("=") else { return nil }
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64).map(Array.init)
    }
}
