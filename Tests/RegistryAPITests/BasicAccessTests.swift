import Auth
import Foundation
import Metadata
import NIOHTTP1
import OCI
import RegistryTesting
import XCTest

/// Token auth off: only logged-in users push, and only staff; anonymous callers pull
/// public repositories only.
class BasicAccessTests: XCTestCase {
    /// Where the metadata lives (`BasicAccessTestsOnPostgres` runs the same tests on PostgreSQL).
    class var metadataKind: TestRegistry.MetadataKind { .sqlite }

    var registry: TestRegistry!
    var client: TestHTTPClient { registry.client }
    let staff = [("Authorization", "Basic " + Data("admin:admin-password".utf8).base64EncodedString())]
    let user = [("Authorization", "Basic " + Data("alice:alice-password".utf8).base64EncodedString())]

    override func setUp() async throws {
        registry = try await TestRegistry.start(auth: .basic, metadata: Self.metadataKind)
        try await registry.createUser("admin", password: "admin-password", staff: true)
        try await registry.createUser("alice", password: "alice-password")
    }

    override func tearDown() async throws {
        await registry.stop()
        registry = nil  // XCTest keeps test case objects until the run ends
    }

    func basic(_ name: String, _ password: String) -> [(String, String)] {
        [("Authorization", "Basic " + Data("\(name):\(password)".utf8).base64EncodedString())]
    }

    func testBaseAsksAnonymousCallersToLogIn() async throws {
        let anonymous = try await client.send(.GET, "/v2/")
        XCTAssertEqual(anonymous.status, .unauthorized)
        XCTAssertEqual(anonymous.header("WWW-Authenticate"), #"Basic realm="registryd""#)
        XCTAssertEqual(anonymous.errorCodes, ["UNAUTHORIZED"])
        let loggedIn = try await client.send(.GET, "/v2/", headers: user)
        XCTAssertEqual(loggedIn.status, .ok)
        let wrong = try await client.send(.GET, "/v2/", headers: basic("alice", "nope-nope"))
        XCTAssertEqual(wrong.status, .unauthorized)
        let unknown = try await client.send(.GET, "/v2/", headers: basic("mallory", "whatever1"))
        XCTAssertEqual(unknown.status, .unauthorized)
    }

    func testOnlyStaffPush() async throws {
        let blob = Fixtures.bytes(100)
        let digest = Fixtures.digest(blob)
        let anonymous = try await client.send(.POST, "/v2/a/blobs/uploads/?digest=\(digest)", body: .bytes(blob))
        XCTAssertEqual(anonymous.status, .unauthorized)
        let notStaff = try await client.send(.POST, "/v2/a/blobs/uploads/?digest=\(digest)", headers: user, body: .bytes(blob))
        XCTAssertEqual(notStaff.status, .forbidden)
        XCTAssertEqual(notStaff.errorCodes, ["DENIED"])
        XCTAssertTrue(notStaff.text.contains("only staff users may push"), notStaff.text)
        let staffPush = try await client.send(.POST, "/v2/a/blobs/uploads/?digest=\(digest)", headers: staff, body: .bytes(blob))
        XCTAssertEqual(staffPush.status, .created)
        let notStaffDelete = try await client.send(.DELETE, "/v2/a/blobs/\(digest)", headers: user)
        XCTAssertEqual(notStaffDelete.status, .forbidden)
    }

    func testLoggedInUsersPullAndAnonymousOnlyPublic() async throws {
        let blob = Fixtures.bytes(100)
        let digest = Fixtures.digest(blob)
        _ = try await client.send(.POST, "/v2/a/blobs/uploads/?digest=\(digest)", headers: staff, body: .bytes(blob))
        let byUser = try await client.send(.GET, "/v2/a/blobs/\(digest)", headers: user)
        XCTAssertEqual(byUser.status, .ok)
        let anonymous = try await client.send(.GET, "/v2/a/blobs/\(digest)")
        XCTAssertEqual(anonymous.status, .unauthorized)
        await assertTrue(try await registry.metadata.setPublic(true, repository: RepositoryName(parsing: "a")))
        let anonymousPublic = try await client.send(.GET, "/v2/a/blobs/\(digest)")
        XCTAssertEqual(anonymousPublic.status, .ok)
        let anonymousPush = try await client.send(.POST, "/v2/a/blobs/uploads/")
        XCTAssertEqual(anonymousPush.status, .unauthorized, "public means pull, never push")
    }

    func testEmptyBasicCredentialsAreAnonymousNotAFailedLogin() async throws {
        // What podman and skopeo send after a Basic challenge when they hold no login.
        let empty = basic("", "")
        let blob = Fixtures.bytes(100)
        let digest = Fixtures.digest(blob)
        _ = try await client.send(.POST, "/v2/a/blobs/uploads/?digest=\(digest)", headers: staff, body: .bytes(blob))
        let manifest = Fixtures.imageManifest(config: blob, layers: [])
        _ = try await client.send(
            .PUT, "/v2/a/manifests/v1", headers: staff + [("Content-Type", MediaType.ociManifest)], body: .bytes(manifest))
        for _ in 0..<20 {
            let refused = try await client.send(.GET, "/v2/a/manifests/v1", headers: empty)
            XCTAssertEqual(refused.status, .unauthorized)
            XCTAssertFalse(refused.text.contains("invalid username"), refused.text)
        }
        await assertTrue(try await registry.metadata.setPublic(true, repository: RepositoryName(parsing: "a")))
        for _ in 0..<3 {  // the full path, then the immediate one
            let pulled = try await client.send(.GET, "/v2/a/manifests/v1", headers: empty)
            XCTAssertEqual(pulled.status, .ok, "twenty empty logins did not throttle the address")
        }
        let push = try await client.send(.POST, "/v2/a/blobs/uploads/", headers: empty)
        XCTAssertEqual(push.status, .unauthorized)
    }

    func testUploadSessionOfAnotherUserIsUnknown() async throws {
        // A Quay CVE: one user could read, alter or cancel another user's upload.
        try await registry.createUser("bob", password: "bob-password", staff: true)
        let bob = basic("bob", "bob-password")
        let start = try await client.send(.POST, "/v2/a/blobs/uploads/", headers: staff)
        let location = try XCTUnwrap(start.header("Location"))
        for method in [HTTPMethod.GET, .PATCH, .PUT, .DELETE] {
            let response = try await client.send(
                method, location + "?digest=\(Fixtures.digest([1]))", headers: bob, body: method == .PATCH ? .bytes([1]) : .none)
            XCTAssertEqual(response.status, .notFound, "\(method)")
            XCTAssertEqual(response.errorCodes, ["BLOB_UPLOAD_UNKNOWN"])
        }
        let own = try await client.send(.GET, location, headers: staff)
        XCTAssertEqual(own.status, .noContent)
    }

    func testRepeatedFailuresEndIn429WithRetryAfter() async throws {
        var statuses: [HTTPResponseStatus] = []
        for _ in 0..<8 {
            statuses.append(try await client.send(.GET, "/v2/", headers: basic("alice", "wrong-password")).status)
        }
        XCTAssertEqual(Array(statuses.prefix(5)), Array(repeating: .unauthorized, count: 5))
        let throttled = try await client.send(.GET, "/v2/", headers: user)
        XCTAssertEqual(throttled.status, .tooManyRequests, "even the right password waits: the address is throttled")
        XCTAssertNotNil(throttled.header("Retry-After").flatMap(Int.init))
        XCTAssertEqual(throttled.errorCodes, ["TOOMANYREQUESTS"])
    }

    func testPasswordChangeAndDisableTakeEffectAtOnce() async throws {
        let first = try await client.send(.GET, "/v2/", headers: user)
        XCTAssertEqual(first.status, .ok, "verified once: now cached")
        await assertTrue(try await registry.metadata.setPasswordHash(PasswordHasher(cost: 4).hash("new-password"), forUser: "alice"))
        let old = try await client.send(.GET, "/v2/", headers: user)
        XCTAssertEqual(old.status, .unauthorized, "the cached old password is dropped at once")
        let new = try await client.send(.GET, "/v2/", headers: basic("alice", "new-password"))
        XCTAssertEqual(new.status, .ok)
        await assertTrue(try await registry.metadata.setDisabled(true, forUser: "alice"))
        let disabled = try await client.send(.GET, "/v2/", headers: basic("alice", "new-password"))
        XCTAssertEqual(disabled.status, .unauthorized)
    }
}

final class BasicAccessTestsOnPostgres: BasicAccessTests {
    override class var metadataKind: TestRegistry.MetadataKind { .postgres }

    func testTheMetadataIsOnPostgres() {
        XCTAssertTrue(registry.metadata is PostgresMetadataStore)
    }
}
