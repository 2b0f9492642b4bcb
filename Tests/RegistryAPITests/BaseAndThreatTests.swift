import NIOHTTP1
import OCI
import RegistryTesting
import XCTest

/// `GET /v2/`, error bodies, and the attacks of docs/THREATS.md that reach the API.
class BaseAndThreatTests: RegistryTestCase {
    func testBaseEndpointAnswers200WithAPIVersion() async throws {
        let response = try await client.send(.GET, "/v2/")
        XCTAssertEqual(response.status, .ok)
        XCTAssertEqual(response.header("Docker-Distribution-API-Version"), "registry/2.0")
    }

    func testHTTP10KeepAliveIsConfirmedAndPlainHTTP10Closes() async throws {
        // An HTTP/1.0 client keeps the connection only when the answer says so (ab -k).
        let kept = try await client.sendRaw("HEAD /v2/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        XCTAssertTrue(kept.lowercased().contains("connection: keep-alive"), kept)
        let closed = try await client.sendRaw("HEAD /v2/ HTTP/1.0\r\n\r\n")
        XCTAssertTrue(closed.lowercased().contains("connection: close"), closed)
    }

    func testEveryErrorCarriesTheOCIBodyAndAPIVersion() async throws {
        for (method, path) in [
            (HTTPMethod.GET, "/v2/nope/x/y/z"), (.GET, "/v3/"), (.POST, "/v2/a/manifests/v1"), (.GET, "/v2/UPPER/tags/list"),
        ] {
            let response = try await client.send(method, path)
            XCTAssertGreaterThanOrEqual(response.status.code, 400, path)
            XCTAssertEqual(response.header("Docker-Distribution-API-Version"), "registry/2.0")
            XCTAssertEqual(response.errorCodes.count, 1, "\(path): \(response.text)")
        }
    }

    func testWrongMethodIs405WithAllow() async throws {
        let response = try await client.send(.POST, "/v2/a/tags/list")
        XCTAssertEqual(response.status, .methodNotAllowed)
        XCTAssertEqual(response.header("Allow"), "GET, HEAD")
    }

    func testHostileNamesAreRejectedBeforeStorage() async throws {
        // CVE-2014-9358-style traversal: names are checked by grammar, never used raw.
        let paths = [
            "/v2/../../etc/blobs/uploads/", "/v2/a/../b/tags/list", "/v2/a//b/tags/list", "/v2/%2e%2e/tags/list",
            "/v2/A/tags/list", "/v2/-a/tags/list", "/v2/a-/tags/list", "/v2/a__/tags/list",
            "/v2/" + String(repeating: "a", count: 256) + "/tags/list",
        ]
        for path in paths {
            let raw = try await client.sendRaw("GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            XCTAssertTrue(raw.hasPrefix("HTTP/1.1 400") || raw.hasPrefix("HTTP/1.1 404"), "\(path): \(raw.prefix(60))")
        }
        let post = try await client.send(.POST, "/v2/a/../../x/blobs/uploads/")
        XCTAssertEqual(post.errorCodes, ["NAME_INVALID"])
        let listed = try await registry.blobs.driver.list(under: .init(["uploads"]))
        XCTAssertEqual(listed, [])
    }

    func testHostileDigestsAreRejected() async throws {
        // CVE-2024-3727: unvalidated digests reached file paths in containers/image.
        for digest in [
            "sha256:../../../etc/passwd", "sha256:ABCDEF", "sha256:" + String(repeating: "a", count: 63), "sha256", ":",
            "sha256:" + String(repeating: "g", count: 64),
        ] {
            let encoded =
                digest.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? digest
            let response = try await client.send(.GET, "/v2/a/blobs/\(encoded)")
            XCTAssertEqual(response.status, .badRequest, digest)
            XCTAssertEqual(response.errorCodes, ["DIGEST_INVALID"], digest)
            let upload = try await client.send(.POST, "/v2/a/blobs/uploads/?digest=\(encoded)", body: .bytes([1]))
            XCTAssertEqual(upload.errorCodes, ["DIGEST_INVALID"], digest)
        }
        let unsupported = try await client.send(.GET, "/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e")
        XCTAssertEqual(unsupported.errorCodes, ["UNSUPPORTED"])
    }

    func testHostileUploadIDsAreUnknown() async throws {
        for id in ["..", "%2e%2e", "a.b", String(repeating: "a", count: 200), "x%00y"] {
            let response = try await client.send(.GET, "/v2/a/blobs/uploads/\(id)")
            XCTAssertEqual(response.status, .notFound, id)
            XCTAssertEqual(response.errorCodes, ["BLOB_UPLOAD_UNKNOWN"], id)
        }
    }

    func testHostileTagsAreRejected() async throws {
        for tag in ["-x", ".x", String(repeating: "t", count: 129), "a%2Fb"] {
            let response = try await client.send(
                .PUT, "/v2/a/manifests/\(tag)", headers: [("Content-Type", MediaType.ociManifest)], body: .bytes(Array("{}".utf8)))
            XCTAssertEqual(response.status, .badRequest, tag)
            XCTAssertEqual(response.errorCodes, ["TAG_INVALID"], tag)
        }
    }

    func testConnectionCloseWinsOverKeepAliveOnBothPaths() async throws {
        // HTTP/1.0 with both options: "close" ends the connection, on the immediate path
        // (tags/list of a pushed repository) and through NIO's parser (/v2/) alike.
        try await client.pushBlob("a", [1])
        _ = try await client.putManifest("a", "v1", Fixtures.imageManifest(config: [1], layers: []))
        for path in ["/v2/a/tags/list", "/v2/a/tags/list", "/v2/"] {
            let closed = try await client.secondsUntilClosed(
                after: "GET \(path) HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", limit: .seconds(3))
            XCTAssertNotNil(closed, "\(path): the connection closes after the answer")
        }
    }

    func testLargeUnwantedBodyDoesNotHangTheConnection() async throws {
        // A handler that refuses a request early must not read a huge body forever.
        let parts = (0..<64).map { _ in Fixtures.bytes(64 * 1024) }
        let response = try await client.send(.PATCH, "/v2/a/blobs/uploads/unknown-id", body: .chunked(parts))
        XCTAssertEqual(response.status, .notFound)
        XCTAssertEqual(response.header("Connection"), "close")
    }
}

/// `Expect: 100-continue` (curl sends it for uploads): a refusal is answered at once,
/// without `100 Continue`; an accepted request gets `100 Continue` before its body.
final class ExpectContinueTests: XCTestCase {
    func testARefusalIsAnsweredAtOnceWithout100Continue() async throws {
        let registry = try await TestRegistry.start(auth: .basic)
        try await registry.createUser("user", password: "password")
        let refusals = [
            ("PATCH /v2/a/blobs/uploads/0b5f1a7e-1111-4222-8333-944455556666", "401"),  // no credentials
            ("PUT /v2/a/manifests/v1", "401"),
            ("PATCH /v2/a/tags/list", "405"),
            ("PATCH /nothing/here", "404"),
        ]
        for (requestLine, status) in refusals {
            let started = ContinuousClock.now
            let answer = try await registry.client.sendRaw(
                "\(requestLine) HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n")
            let waited = ContinuousClock.now - started
            XCTAssertTrue(answer.hasPrefix("HTTP/1.1 \(status) "), "\(requestLine): \(answer)")
            XCTAssertFalse(answer.contains("100 Continue"), requestLine)
            XCTAssertTrue(answer.lowercased().contains("connection: close"), "the body never came: the connection ends (\(requestLine))")
            XCTAssertLessThan(waited, .milliseconds(500), "\(requestLine) waited for a body it did not want")
        }
        await registry.stop()
    }

    func testAnAcceptedUploadGets100ContinueBeforeItsBody() async throws {
        let registry = try await TestRegistry.start()
        let location = try await registry.client.startUpload("a")
        let answer = try await registry.client.sendRaw(
            "PATCH \(location) HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
        XCTAssertTrue(answer.hasPrefix("HTTP/1.1 100 Continue\r\n"), answer)
        await registry.stop()
    }
}

/// The same tests with the immediate path off: every request through NIO's parser.
final class BaseAndThreatTestsWithoutImmediateAnswers: BaseAndThreatTests {
    override class var immediateAnswers: Bool { false }

    func testEveryReadTakesTheFullPath() async throws {
        try await assertEveryReadTakesTheFullPath()
    }
}
