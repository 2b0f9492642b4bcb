import Foundation
import OCI
import RegistryTesting
import XCTest

@testable import Auth

/// Tokens: HS256 with the pinned key only.
final class TokenServiceTests: XCTestCase {
    let key = TokenSigningKey(bytes: Array(repeating: 7, count: 32))
    var service: TokenService { TokenService(key: key, service: "registryd", issuer: "registryd") }
    let scope = Scope(repository: try! RepositoryName(parsing: "team/app"), actions: [.pull, .push])

    func testIssuedTokenVerifiesWithItsGrants() throws {
        let issued = service.issue(subject: "alice", grants: [scope])
        let principal = try service.verify(issued.token)
        XCTAssertEqual(principal.name, "alice")
        XCTAssertEqual(principal.tokenGrants, ["team/app": [.pull, .push]])
    }

    func testExpiredTokenIsRefused() {
        let issued = service.issue(subject: "alice", grants: [scope], now: Date(timeIntervalSinceNow: -600))
        XCTAssertThrowsError(try service.verify(issued.token)) { XCTAssertEqual($0 as? TokenError, .expired) }
    }

    func testBase64URLRoundTripsEveryLengthWithoutPadding() {
        for length in 0..<70 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 37 + 250) }
            let text = Base64URL.encode(bytes)
            XCTAssertFalse(text.contains { "+/=".contains($0) }, text)
            XCTAssertEqual(Base64URL.decode(text), bytes)
        }
        XCTAssertEqual(Base64URL.encode([0xfb, 0xff, 0xbf]), "-_-_")
        XCTAssertNil(Base64URL.decode("-_-_="), "padding is not part of the URL alphabet")
    }

    func testTokenOfAnotherKeyOrServiceIsRefused() {
        let other = TokenService(key: TokenSigningKey(bytes: Array(repeating: 8, count: 32)), service: "registryd", issuer: "registryd")
        XCTAssertThrowsError(try service.verify(other.issue(subject: "a", grants: []).token)) {
            XCTAssertEqual($0 as? TokenError, .unknownKey)
        }
        let sameKeyOtherService = TokenService(key: key, service: "elsewhere", issuer: "registryd")
        XCTAssertThrowsError(try service.verify(sameKeyOtherService.issue(subject: "a", grants: []).token)) {
            XCTAssertEqual($0 as? TokenError, .wrongAudience)
        }
    }

    func testDuringARotationTokensOfEitherKeyAreAcceptedAndNoOthers() throws {
        let old = TokenSigningKey(bytes: Array(repeating: 1, count: 32))
        let new = TokenSigningKey(bytes: Array(repeating: 2, count: 32))
        let stranger = TokenSigningKey(bytes: Array(repeating: 3, count: 32))
        let scope = try XCTUnwrap(Scope(parsing: "repository:team/app:pull"))
        let byOld = TokenService(key: old, service: "registryd", issuer: "registryd").issue(subject: "alice", grants: [scope]).token
        let byNew = TokenService(key: new, service: "registryd", issuer: "registryd").issue(subject: "alice", grants: [scope]).token
        // Step 1 of a rotation: still signing with the old key, already accepting the new one.
        let accepting = TokenService(key: old, alsoAccepting: [new], service: "registryd", issuer: "registryd")
        XCTAssertNoThrow(try accepting.verify(byOld))
        XCTAssertNoThrow(try accepting.verify(byNew))
        // Step 2: signing with the new key, the old one's tokens still good until they expire.
        let rotated = TokenService(key: new, alsoAccepting: [old], service: "registryd", issuer: "registryd")
        XCTAssertEqual(try rotated.verify(byOld).name, "alice")
        XCTAssertNoThrow(try rotated.verify(rotated.issue(subject: "bob", grants: [scope]).token))
        // Done: the old key's tokens are refused.
        let done = TokenService(key: new, service: "registryd", issuer: "registryd")
        XCTAssertThrowsError(try done.verify(byOld)) { XCTAssertEqual($0 as? TokenError, .unknownKey) }
        let byStranger = TokenService(key: stranger, service: "registryd", issuer: "registryd").issue(subject: "x", grants: [scope]).token
        XCTAssertThrowsError(try rotated.verify(byStranger)) { XCTAssertEqual($0 as? TokenError, .unknownKey) }
    }

    func testAlgorithmAndEmbeddedKeysAreNeverTrusted() throws {
        let parts = service.issue(subject: "alice", grants: [scope]).token.split(separator: ".").map(String.init)
        func header(_ object: [String: Any]) -> String { Base64URL.encode(Array(try! JSONSerialization.data(withJSONObject: object))) }
        let cases: [(String, TokenError)] = [
            (header(["alg": "none", "kid": key.id]) + "." + parts[1] + ".", .algorithmNotAllowed),
            (header(["alg": "RS256", "kid": key.id]) + "." + parts[1] + "." + parts[2], .algorithmNotAllowed),
            (header(["alg": "HS256", "kid": key.id, "jwk": ["kty": "oct"]]) + "." + parts[1] + "." + parts[2], .embeddedKey),
            (header(["alg": "HS256", "kid": key.id, "jku": "https://evil.invalid/keys"]) + "." + parts[1] + "." + parts[2], .embeddedKey),
            (
                Base64URL.encode(Array(#"{"alg":"HS256","kid":"\#(key.id)","x5u":null}"#.utf8)) + "." + parts[1] + "." + parts[2],
                .embeddedKey
            ),
            (
                Base64URL.encode(Array(#"{"alg":["HS256"],"kid":"\#(key.id)"}"#.utf8)) + "." + parts[1] + "." + parts[2],
                .algorithmNotAllowed
            ),
            (Base64URL.encode(Array(#"{"alg":"HS256","kid":7}"#.utf8)) + "." + parts[1] + "." + parts[2], .unknownKey),
            (Base64URL.encode(Array(#"["HS256"]"#.utf8)) + "." + parts[1] + "." + parts[2], .malformed),
            (parts[0] + "=." + parts[1] + "." + parts[2], .malformed),
            (parts[0] + "." + Base64URL.encode(Array(#"{"sub":"root"}"#.utf8)) + "." + parts[2], .badSignature),
            ("a.b", .malformed),
        ]
        for (token, expected) in cases {
            XCTAssertThrowsError(try service.verify(token), token) { XCTAssertEqual($0 as? TokenError, expected, token) }
        }
    }

    func testKeyFileIsCreatedOwnerOnlyAndReused() throws {
        let path = NSTemporaryDirectory() + "/registryd-key-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let created = try TokenSigningKey.loadOrCreate(at: path)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int, 0o600)
        let loaded = try TokenSigningKey.loadOrCreate(at: path)
        XCTAssertEqual(created.id, loaded.id)
        // An operator's editor may add blanks around the hex; they are not part of the key.
        let hex = try String(contentsOfFile: path, encoding: .utf8).filter { !$0.isWhitespace }
        try " \t\(hex)\r\n\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try TokenSigningKey.loadOrCreate(at: path).id, created.id)
        try "not hex".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TokenSigningKey.loadOrCreate(at: path))
    }

    func testScopesParseRepositoryActionsOnly() {
        XCTAssertEqual(Scope(parsing: "repository:team/app:pull,push")?.actions, [.pull, .push])
        XCTAssertEqual(Scope(parsing: "repository:team/app:*")?.actions, [], "a wildcard never widens")
        XCTAssertNil(Scope(parsing: "registry:catalog:*"))
        XCTAssertNil(Scope(parsing: "repository:../etc:pull"))
        XCTAssertNil(Scope(parsing: "repository:pull"))
    }
}
