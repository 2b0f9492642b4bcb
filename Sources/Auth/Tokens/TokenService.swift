import FoundationEssentials
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
    /// Signs every token issued here.
    public let key: TokenSigningKey
    /// Keys whose tokens are still accepted, besides `key`'s: the keys of a rotation
    /// under way (docs/SCALE-OUT.md), found by the token's `kid`.
    public let acceptedKeys: [TokenSigningKey]
    public let service: String
    public let issuer: String
    /// Seconds a token is valid. Clients fetch a new one when it runs out; a request
    /// that started with a valid token finishes with it.
    public let lifetime: Int
    private static let allowedAlgorithm = "HS256"
    private static let keyCarryingHeaders = ["jwk", "jku", "x5c", "x5u"]

    public init(
        key: TokenSigningKey, alsoAccepting acceptedKeys: [TokenSigningKey] = [], service: String, issuer: String, lifetime: Int = 300
    ) {
        self.key = key
        self.acceptedKeys = acceptedKeys
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
            access: grants.filter { !$0.actions.isEmpty }.map {
                Access(type: "repository", name: $0.repository.value, actions: $0.actions.sorted().map(\.rawValue))
            })
        let header = Header(typ: "JWT", alg: Self.allowedAlgorithm, kid: key.id)
        let signingInput = Base64URL.encode(Self.json(header)) + "." + Base64URL.encode(Self.json(claims))
        let signature = Base64URL.encode(key.sign(Array(signingInput.utf8)))
        return IssuedToken(token: signingInput + "." + signature, expiresIn: lifetime, issuedAt: now)
    }

    /// The principal a token speaks for, with what it grants.
    public func verify(_ token: String, now: Date = Date()) throws(TokenError) -> Principal {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, token.utf8.count <= 16 * 1024,
            let headerBytes = Base64URL.decode(parts[0]), let claimBytes = Base64URL.decode(parts[1]),
            let signature = Base64URL.decode(parts[2])
        else { throw .malformed }
        guard let header = try? JSONDecoder().decode(ReceivedHeader.self, from: Data(headerBytes)) else { throw .malformed }
        guard header.alg == Self.allowedAlgorithm else { throw .algorithmNotAllowed }
        guard header.names.isDisjoint(with: Self.keyCarryingHeaders) else { throw .embeddedKey }
        guard let verifying = ([key] + acceptedKeys).first(where: { $0.id == header.kid }) else { throw .unknownKey }
        guard verifying.isValid(signature, for: Array((parts[0] + "." + parts[1]).utf8)) else { throw .badSignature }
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

    /// A received token's header: every name in it (a key-carrying one is refused
    /// whatever its value, even null) and `alg`/`kid` when they are strings.
    private struct ReceivedHeader: Decodable {
        let names: Set<String>
        let alg: String?
        let kid: String?

        private struct Name: CodingKey {
            let stringValue: String
            init(stringValue: String) { self.stringValue = stringValue }
            var intValue: Int? { nil }
            init?(intValue: Int) { nil }
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Name.self)
            names = Set(container.allKeys.map(\.stringValue))
            alg = try? container.decodeIfPresent(String.self, forKey: Name(stringValue: "alg"))
            kid = try? container.decodeIfPresent(String.self, forKey: Name(stringValue: "kid"))
        }
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
        let base64 = Data(bytes).base64EncodedString().utf8.compactMap { byte -> UInt8? in
            switch byte {
            case UInt8(ascii: "+"): UInt8(ascii: "-")
            case UInt8(ascii: "/"): UInt8(ascii: "_")
            case UInt8(ascii: "="): nil
            default: byte
            }
        }
        return String(decoding: base64, as: UTF8.self)
    }

    static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var base64 = text.utf8.map { byte -> UInt8 in
            switch byte {
            case UInt8(ascii: "-"): UInt8(ascii: "+")
            case UInt8(ascii: "_"): UInt8(ascii: "/")
            default: byte
            }
        }
        guard !base64.contains(UInt8(ascii: "=")) else { return nil }
        while base64.count % 4 != 0 { base64.append(UInt8(ascii: "=")) }
        return Data(base64Encoded: Data(base64)).map(Array.init)
    }
}
