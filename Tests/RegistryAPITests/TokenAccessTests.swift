import Auth
import Foundation
import Metadata
import NIOHTTP1
import OCI
import RegistryTesting
import XCTest

/// Token auth on: the Docker token flow, namespaces and roles.
class TokenAccessTests: XCTestCase {
    /// Where the metadata lives (`TokenAccessTestsOnPostgres` runs the same tests on PostgreSQL).
    class var metadataKind: TestRegistry.MetadataKind { .sqlite }

    var registry: TestRegistry!
    var client: TestHTTPClient { registry.client }

    override func setUp() async throws {
        registry = try await TestRegistry.start(auth: .token, metadata: Self.metadataKind)
        try await registry.createUser("alice", password: "alice-password")
        try await registry.createUser("bob", password: "bob-password")
        try await registry.createUser("root", password: "root-password", staff: true)
    }

    override func tearDown() async throws {
        await registry.stop()
        registry = nil  // XCTest keeps test case objects until the run ends
    }

    /// A token for `user` (nil: anonymous) and `scopes`; returns the bearer header.
    func token(_ user: String?, _ scopes: [String]) async throws -> [(String, String)] {
        let query = (["service=registryd"] + scopes.map { "scope=\($0)" }).joined(separator: "&")
        var headers: [(String, String)] = []
        if let user { headers.append(("Authorization", "Basic " + Data("\(user):\(user)-password".utf8).base64EncodedString())) }
        let response = try await client.send(.GET, "/token?\(query)", headers: headers)
        XCTAssertEqual(response.status, .ok, response.text)
        let json = try response.json()
        XCTAssertEqual(json["token"] as? String, json["access_token"] as? String)
        XCTAssertEqual(json["expires_in"] as? Int, 300)
        XCTAssertNotNil(json["issued_at"] as? String)
        return [("Authorization", "Bearer \(try XCTUnwrap(json["token"] as? String))")]
    }

    func grantedActions(_ bearer: [(String, String)]) throws -> [[String: Any]] {
        let token = bearer[0].1.dropFirst("Bearer ".count)
        let claims = token.split(separator: ".")[1]
        var base64 = claims.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        let object = try JSONSerialization.jsonObject(with: try XCTUnwrap(Data(base64Encoded: base64))) as? [String: Any]
        return object?["access"] as? [[String: Any]] ?? []
    }

    func push(_ repository: String, _ bearer: [(String, String)], seed: UInt64 = 1) async throws -> HTTPResponseStatus {
        let blob = Fixtures.bytes(64, seed: seed)
        return try await client.send(
            .POST, "/v2/\(repository)/blobs/uploads/?digest=\(Fixtures.digest(blob))", headers: bearer, body: .bytes(blob)
        ).status
    }

    func testAnonymousBaseGetsABearerChallenge() async throws {
        let response = try await client.send(.GET, "/v2/")
        XCTAssertEqual(response.status, .unauthorized)
        XCTAssertEqual(
            response.header("WWW-Authenticate"), "Bearer realm=\"http://127.0.0.1:\(registry.port)/token\",service=\"registryd\"")
        let pull = try await client.send(.GET, "/v2/alice/app/tags/list")
        XCTAssertEqual(
            pull.header("WWW-Authenticate"),
            "Bearer realm=\"http://127.0.0.1:\(registry.port)/token\",service=\"registryd\",scope=\"repository:alice/app:pull\"")
    }

    func testWrongPasswordGetsNoToken() async throws {
        let response = try await client.send(
            .GET, "/token?service=registryd&scope=repository:alice/app:pull",
            headers: [("Authorization", "Basic " + Data("alice:nope".utf8).base64EncodedString())])
        XCTAssertEqual(response.status, .unauthorized)
    }

    func testUsersPushToTheirOwnNamespaceWhichIsCreatedOnFirstPush() async throws {
        let bearer = try await token("alice", ["repository:alice/app:pull,push", "repository:bob/app:pull,push"])
        let grants = try grantedActions(bearer)
        XCTAssertEqual(grants.count, 1, "nothing is granted on bob's namespace")
        XCTAssertEqual(grants.first?["name"] as? String, "alice/app")
        XCTAssertEqual(Set(grants.first?["actions"] as? [String] ?? []), ["pull", "push"])
        await assertFalse(try await registry.metadata.namespaceExists("alice"))
        let pushed = try await push("alice/app", bearer)
        XCTAssertEqual(pushed, .created)
        await assertEqual(try await registry.metadata.role(of: "alice", in: "alice"), .owner)
        let elsewhere = try await push("bob/app", bearer)
        XCTAssertEqual(elsewhere, .forbidden)
    }

    func testPrivateRepositoriesAreInvisibleAndRolesDecide() async throws {
        let alice = try await token("alice", ["repository:alice/app:pull,push,delete"])
        let pushedByAlice = try await push("alice/app", alice)
        XCTAssertEqual(pushedByAlice, .created)
        let digest = Fixtures.digest(Fixtures.bytes(64, seed: 1))

        var bob = try await token("bob", ["repository:alice/app:pull,push"])
        let invisible = try await client.send(.GET, "/v2/alice/app/blobs/\(digest)", headers: bob)
        let missing = try await client.send(.GET, "/v2/alice/nothing/blobs/\(digest)", headers: bob)
        XCTAssertEqual(invisible.status, .notFound)
        XCTAssertEqual(invisible.errorCodes, missing.errorCodes, "a private repository looks like one that does not exist")

        try await registry.metadata.grant(.consumer, on: "alice", to: "bob")
        bob = try await token("bob", ["repository:alice/app:pull,push"])
        let consumerPull = try await client.send(.GET, "/v2/alice/app/blobs/\(digest)", headers: bob)
        XCTAssertEqual(consumerPull.status, .ok)
        let consumerPush = try await push("alice/app", bob, seed: 2)
        XCTAssertEqual(consumerPush, .forbidden)

        try await registry.metadata.grant(.collaborator, on: "alice", to: "bob")
        bob = try await token("bob", ["repository:alice/app:pull,push,delete"])
        let collaboratorPush = try await push("alice/app", bob, seed: 2)
        XCTAssertEqual(collaboratorPush, .created)
        let collaboratorDelete = try await client.send(.DELETE, "/v2/alice/app/blobs/\(digest)", headers: bob)
        XCTAssertEqual(collaboratorDelete.status, .forbidden)
        let ownerDelete = try await client.send(.DELETE, "/v2/alice/app/blobs/\(digest)", headers: alice)
        XCTAssertEqual(ownerDelete.status, .accepted)
    }

    func testStaffMayDoEverything() async throws {
        let root = try await token("root", ["repository:anyone/thing:pull,push,delete"])
        let pushed = try await push("anyone/thing", root)
        XCTAssertEqual(pushed, .created)
    }

    func testPublicRepositoriesArePullableWithAnAnonymousToken() async throws {
        let alice = try await token("alice", ["repository:alice/app:push,pull"])
        _ = try await push("alice/app", alice)
        let digest = Fixtures.digest(Fixtures.bytes(64, seed: 1))
        var anonymous = try await token(nil, ["repository:alice/app:pull,push"])
        XCTAssertTrue(try grantedActions(anonymous).isEmpty)
        await assertTrue(try await registry.metadata.setPublic(true, repository: RepositoryName(parsing: "alice/app")))
        anonymous = try await token(nil, ["repository:alice/app:pull,push"])
        XCTAssertEqual(try grantedActions(anonymous).first?["actions"] as? [String], ["pull"])
        let pulled = try await client.send(.GET, "/v2/alice/app/blobs/\(digest)", headers: anonymous)
        XCTAssertEqual(pulled.status, .ok)
    }

    func testCatalogListsOnlyReadableRepositories() async throws {
        let alice = try await token("alice", ["repository:alice/app:push,pull"])
        _ = try await push("alice/app", alice)
        let bob = try await token("bob", ["repository:bob/tool:push,pull"])
        _ = try await push("bob/tool", bob)
        let catalogToken = try await token("bob", ["registry:catalog:*"])
        let catalog = try await client.send(.GET, "/v2/_catalog", headers: catalogToken)
        XCTAssertEqual(try catalog.json()["repositories"] as? [String], ["bob/tool"])
    }

    func testMountNeedsPullOnTheSource() async throws {
        // zot CVE-2024-39897: a mount must not copy a blob out of a repository the caller cannot read.
        let alice = try await token("alice", ["repository:alice/app:push,pull"])
        _ = try await push("alice/app", alice)
        let digest = Fixtures.digest(Fixtures.bytes(64, seed: 1))
        let bob = try await token("bob", ["repository:bob/tool:push,pull", "repository:alice/app:pull"])
        for query in ["mount=\(digest)&from=alice/app", "mount=\(digest)"] {
            let mount = try await client.send(.POST, "/v2/bob/tool/blobs/uploads/?\(query)", headers: bob)
            XCTAssertEqual(mount.status, .accepted, "falls back to an upload: \(query)")
        }
        let head = try await client.send(.HEAD, "/v2/bob/tool/blobs/\(digest)", headers: bob)
        XCTAssertEqual(head.status, .notFound)
    }

    func testNoRequestCreatesAccountsOrForeignNamespaces() async throws {
        // Harbor CVE-2019-16097: accounts come only from the control socket.
        let stranger = try await client.send(
            .GET, "/token?service=registryd&scope=repository:mallory/x:pull,push",
            headers: [("Authorization", "Basic " + Data("mallory:any-password".utf8).base64EncodedString())])
        XCTAssertEqual(stranger.status, .unauthorized)
        await assertNil(try await registry.metadata.user(named: "mallory"))
        let alice = try await token("alice", ["repository:mallory/x:pull,push"])
        let pushed = try await push("mallory/x", alice)
        XCTAssertEqual(pushed, .forbidden)
        await assertFalse(try await registry.metadata.namespaceExists("mallory"))
        await assertEqual(try await registry.metadata.users().map(\.name), ["alice", "bob", "root"])
    }

    func testATokenValidAtTheStartOfAnUploadCarriesItToTheEnd() async throws {
        let shortLived = try await TestRegistry.start(auth: .token(tokenLifetime: 2))
        try await shortLived.createUser("alice", password: "alice-password")
        let issued = try await shortLived.client.send(
            .GET, "/token?service=registryd&scope=repository:alice/app:pull,push",
            headers: [("Authorization", "Basic " + Data("alice:alice-password".utf8).base64EncodedString())])
        let bearer = [("Authorization", "Bearer \(try XCTUnwrap(try issued.json()["token"] as? String))")]
        let start = try await shortLived.client.send(.POST, "/v2/alice/app/blobs/uploads/", headers: bearer)
        let location = try XCTUnwrap(start.header("Location"))
        // This PATCH outlives the token: it was valid when the request began.
        let slow = try await shortLived.client.send(
            .PATCH, location, headers: bearer, body: .paced(chunk: Fixtures.bytes(1024), count: 30, pause: .milliseconds(100)))
        XCTAssertEqual(slow.status, .accepted)
        XCTAssertEqual(slow.header("Range"), "0-\(30 * 1024 - 1)")
        let late = try await shortLived.client.send(.GET, location, headers: bearer)
        XCTAssertEqual(late.status, .unauthorized, "a new request with the expired token is refused")
        await shortLived.stop()
    }

    func testForgedTokensAreRefused() async throws {
        // CVE-2025-24976: never trust the algorithm or a key that the token brings.
        let real = try await token("root", ["repository:x/y:pull,push"])[0].1.dropFirst("Bearer ".count)
        let parts = real.split(separator: ".").map(String.init)
        func encode(_ object: [String: Any]) -> String {
            (try! JSONSerialization.data(withJSONObject: object)).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        let forgeries = [
            encode(["alg": "none", "typ": "JWT"]) + "." + parts[1] + ".",
            encode(["alg": "HS512", "typ": "JWT"]) + "." + parts[1] + "." + parts[2],
            encode(["alg": "HS256", "typ": "JWT", "jwk": ["kty": "oct", "k": "AAAA"]]) + "." + parts[1] + "." + parts[2],
            parts[0] + "." + parts[1] + "." + String(parts[2].reversed()),
            "garbage",
        ]
        for forged in forgeries {
            let response = try await client.send(.POST, "/v2/x/y/blobs/uploads/", headers: [("Authorization", "Bearer \(forged)")])
            XCTAssertEqual(response.status, .unauthorized, forged)
            XCTAssertTrue(response.header("WWW-Authenticate")?.contains("invalid_token") == true)
        }
    }
}

final class TokenAccessTestsOnPostgres: TokenAccessTests {
    override class var metadataKind: TestRegistry.MetadataKind { .postgres }

    func testTheMetadataIsOnPostgres() {
        XCTAssertTrue(registry.metadata is PostgresMetadataStore)
    }
}
