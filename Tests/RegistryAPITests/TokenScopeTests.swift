import Foundation
import NIOHTTP1
import OCI
import RegistryTesting
import XCTest

/// Token auth: which actions each endpoint needs (docs/AUTH.md, "Endpoints and
/// actions"), row by row, with tokens that carry every combination of actions.
final class TokenScopeTests: XCTestCase {
    var registry: TestRegistry!
    var client: TestHTTPClient { registry.client }
    /// alice owns the namespace `alice`: the token endpoint grants her whatever she asks for there.
    var owner: [(String, String)] = []
    let repository = "alice/app"

    override func setUp() async throws {
        registry = try await TestRegistry.start(auth: .token)
        try await registry.createUser("alice", password: "alice-password")
        try await registry.createUser("bob", password: "bob-password")
        owner = try await token("alice", "pull,push,delete")
    }

    override func tearDown() async throws {
        await registry.stop()
        registry = nil  // XCTest keeps test case objects until the run ends
    }

    func token(_ user: String, _ actions: String, repository: String = "alice/app") async throws -> [(String, String)] {
        let basic = "Basic " + Data("\(user):\(user)-password".utf8).base64EncodedString()
        let response = try await client.send(
            .GET, "/token?service=registryd&scope=repository:\(repository):\(actions)", headers: [("Authorization", basic)])
        XCTAssertEqual(response.status, .ok, response.text)
        return [("Authorization", "Bearer \(try XCTUnwrap(try response.json()["token"] as? String))")]
    }

    /// One request, built afresh (with the owner's token) for every attempt, since
    /// many of them use up what they act on.
    struct Row {
        let endpoint: String
        let needs: Set<String>
        let succeeds: HTTPResponseStatus
        let prepare: (TokenScopeTests) async throws -> (HTTPMethod, String, TestHTTPClient.Body)
    }

    /// Pushes a small image tagged `tag` and returns (manifest digest, layer digest).
    func pushImage(tag: String, seed: UInt64) async throws -> (manifest: String, layer: String) {
        let config = Fixtures.json(["seed": seed])
        let layer = Fixtures.bytes(100, seed: seed)
        for blob in [config, layer] {
            let pushed = try await client.send(
                .POST, "/v2/\(repository)/blobs/uploads/?digest=\(Fixtures.digest(blob))", headers: owner, body: .bytes(blob))
            XCTAssertEqual(pushed.status, .created)
        }
        let manifest = Fixtures.imageManifest(config: config, layers: [layer])
        let put = try await client.send(
            .PUT, "/v2/\(repository)/manifests/\(tag)", headers: owner + [("Content-Type", MediaType.ociManifest)], body: .bytes(manifest))
        XCTAssertEqual(put.status, .created)
        return (Fixtures.digest(manifest), Fixtures.digest(layer))
    }

    func startUpload() async throws -> String {
        let started = try await client.send(.POST, "/v2/\(repository)/blobs/uploads/", headers: owner)
        return try XCTUnwrap(started.header("Location"))
    }

    var seed: UInt64 = 1000
    func nextSeed() -> UInt64 { seed += 1; return seed }

    var rows: [Row] {
        let name = repository
        return [
            Row(endpoint: "GET tags/list", needs: ["pull"], succeeds: .ok) { test in
                _ = try await test.pushImage(tag: "v1", seed: 1)
                return (.GET, "/v2/\(name)/tags/list", .none)
            },
            Row(endpoint: "GET manifests/<tag>", needs: ["pull"], succeeds: .ok) { test in
                _ = try await test.pushImage(tag: "v1", seed: 1)
                return (.GET, "/v2/\(name)/manifests/v1", .none)
            },
            Row(endpoint: "HEAD manifests/<digest>", needs: ["pull"], succeeds: .ok) { test in
                let image = try await test.pushImage(tag: "v1", seed: 1)
                return (.HEAD, "/v2/\(name)/manifests/\(image.manifest)", .none)
            },
            Row(endpoint: "GET blobs/<digest>", needs: ["pull"], succeeds: .ok) { test in
                let image = try await test.pushImage(tag: "v1", seed: 1)
                return (.GET, "/v2/\(name)/blobs/\(image.layer)", .none)
            },
            Row(endpoint: "HEAD blobs/<digest>", needs: ["pull"], succeeds: .ok) { test in
                let image = try await test.pushImage(tag: "v1", seed: 1)
                return (.HEAD, "/v2/\(name)/blobs/\(image.layer)", .none)
            },
            Row(endpoint: "GET referrers/<digest>", needs: ["pull"], succeeds: .ok) { test in
                let image = try await test.pushImage(tag: "v1", seed: 1)
                return (.GET, "/v2/\(name)/referrers/\(image.manifest)", .none)
            },
            Row(endpoint: "GET blobs/uploads/<id>", needs: ["pull"], succeeds: .noContent) { test in
                (.GET, try await test.startUpload(), .none)
            },
            Row(endpoint: "POST blobs/uploads/", needs: ["pull", "push"], succeeds: .accepted) { _ in
                (.POST, "/v2/\(name)/blobs/uploads/", .none)
            },
            Row(endpoint: "POST blobs/uploads/?digest= (monolithic)", needs: ["pull", "push"], succeeds: .created) { test in
                let blob = Fixtures.bytes(50, seed: test.nextSeed())
                return (.POST, "/v2/\(name)/blobs/uploads/?digest=\(Fixtures.digest(blob))", .bytes(blob))
            },
            Row(endpoint: "POST blobs/uploads/?mount=&from=", needs: ["pull", "push"], succeeds: .created) { test in
                let image = try await test.pushImage(tag: "v1", seed: 1)
                return (.POST, "/v2/\(name)/blobs/uploads/?mount=\(image.layer)&from=\(name)", .none)
            },
            Row(endpoint: "PATCH blobs/uploads/<id>", needs: ["pull", "push"], succeeds: .accepted) { test in
                (.PATCH, try await test.startUpload(), .bytes(Fixtures.bytes(10)))
            },
            Row(endpoint: "PUT blobs/uploads/<id>?digest=", needs: ["pull", "push"], succeeds: .created) { test in
                let blob = Fixtures.bytes(50, seed: test.nextSeed())
                return (.PUT, try await test.startUpload() + "?digest=\(Fixtures.digest(blob))", .bytes(blob))
            },
            Row(endpoint: "PUT manifests/<tag>", needs: ["pull", "push"], succeeds: .created) { test in
                let config = Fixtures.json(["seed": 1])
                _ = try await test.pushImage(tag: "v1", seed: 1)
                return (
                    .PUT, "/v2/\(name)/manifests/v\(test.nextSeed())",
                    .bytes(Fixtures.imageManifest(config: config, layers: [Fixtures.bytes(100, seed: 1)]))
                )
            },
            Row(endpoint: "DELETE blobs/uploads/<id>", needs: ["push"], succeeds: .noContent) { test in
                (.DELETE, try await test.startUpload(), .none)
            },
            Row(endpoint: "DELETE manifests/<digest>", needs: ["delete"], succeeds: .accepted) { test in
                let image = try await test.pushImage(tag: "v1", seed: test.nextSeed())
                return (.DELETE, "/v2/\(name)/manifests/\(image.manifest)", .none)
            },
            Row(endpoint: "DELETE manifests/<tag>", needs: ["delete"], succeeds: .accepted) { test in
                _ = try await test.pushImage(tag: "v1", seed: 1)
                return (.DELETE, "/v2/\(name)/manifests/v1", .none)
            },
            Row(endpoint: "DELETE blobs/<digest>", needs: ["delete"], succeeds: .accepted) { test in
                let image = try await test.pushImage(tag: "v1", seed: test.nextSeed())
                return (.DELETE, "/v2/\(name)/blobs/\(image.layer)", .none)
            },
        ]
    }

    func testEveryEndpointNeedsExactlyItsActions() async throws {
        let combinations: [Set<String>] = [
            ["pull"], ["push"], ["delete"], ["pull", "push"], ["pull", "delete"], ["push", "delete"], ["pull", "push", "delete"],
        ]
        var bearers: [Set<String>: [(String, String)]] = [:]
        for actions in combinations {
            bearers[actions] = try await token("alice", actions.sorted().joined(separator: ","))
        }
        for row in rows {
            for actions in combinations {
                let (method, uri, body) = try await row.prepare(self)
                let headers =
                    try XCTUnwrap(bearers[actions])
                    + (method == .PUT && uri.contains("/manifests/") ? [("Content-Type", MediaType.ociManifest)] : [])
                let response = try await client.send(method, uri, headers: headers, body: body)
                let label = "\(row.endpoint) with a token for \(actions.sorted())"
                if row.needs.isSubset(of: actions) {
                    XCTAssertEqual(response.status, row.succeeds, "\(label): \(response.text)")
                } else {
                    // alice may do it all: only her token falls short, so she is told the
                    // scope the request needs (RFC 6750's insufficient_scope: 403 and a challenge).
                    let scope = ["pull", "push", "delete"].filter(row.needs.contains).joined(separator: ",")
                    XCTAssertEqual(response.status, .forbidden, label)
                    if method != .HEAD { XCTAssertEqual(response.errorCodes, ["DENIED"], label) }
                    let challenge = response.header("WWW-Authenticate") ?? ""
                    XCTAssertTrue(challenge.contains(#"error="insufficient_scope""#), "\(label): \(challenge)")
                    XCTAssertTrue(challenge.contains(#"scope="repository:alice/app:\#(scope)""#), "\(label): \(challenge)")
                }
            }
        }
    }

    func testAUserWhoMayNotIsDeniedRatherThanAskedForANewToken() async throws {
        _ = try await pushImage(tag: "v1", seed: 1)
        let stranger = try await token("bob", "pull,push")
        let invisible = try await client.send(.GET, "/v2/\(repository)/tags/list", headers: stranger)
        XCTAssertEqual(invisible.status, .notFound, "a private repository bob may not read does not exist for him")
        XCTAssertEqual(invisible.errorCodes, ["NAME_UNKNOWN"])
        try await registry.metadata.grant(.consumer, on: "alice", to: "bob")
        let consumer = try await token("bob", "pull,push")
        let push = try await client.send(.POST, "/v2/\(repository)/blobs/uploads/", headers: consumer)
        XCTAssertEqual(push.status, .forbidden, "no token would let a consumer push")
        XCTAssertEqual(push.errorCodes, ["DENIED"])
        XCTAssertNil(push.header("WWW-Authenticate"))
    }

    func testAnUploadSessionAnswersOnlyItsOwner() async throws {
        try await registry.metadata.grant(.collaborator, on: "alice", to: "bob")
        let bob = try await token("bob", "pull,push")
        let location = try await startUpload()
        for (method, body) in [
            (HTTPMethod.GET, TestHTTPClient.Body.none), (.PATCH, .bytes([1, 2, 3])), (.PUT, .bytes([1])), (.DELETE, .none),
        ] {
            let uri = method == .PUT ? location + "?digest=\(Fixtures.digest([1]))" : location
            let response = try await client.send(method, uri, headers: bob, body: body)
            XCTAssertEqual(response.status, .notFound, "\(method)")
            if method != .HEAD { XCTAssertEqual(response.errorCodes, ["BLOB_UPLOAD_UNKNOWN"], "\(method)") }
        }
        let status = try await client.send(.GET, location, headers: owner)
        XCTAssertEqual(status.status, .noContent)
        XCTAssertEqual(status.header("Range"), "0-0", "nothing another user sent reached the session")
    }

    func testAnAnonymousPushIsChallengedForTheWholeScope() async throws {
        let response = try await client.send(.POST, "/v2/\(repository)/blobs/uploads/")
        XCTAssertEqual(response.status, .unauthorized)
        XCTAssertEqual(
            response.header("WWW-Authenticate"),
            "Bearer realm=\"http://127.0.0.1:\(registry.port)/token\",service=\"registryd\",scope=\"repository:\(repository):pull,push\"")
    }
}
