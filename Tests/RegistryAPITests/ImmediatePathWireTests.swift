import Foundation
import NIOHTTP1
import OCI
import RegistryAPI
import RegistryTesting
import XCTest

/// The immediate path reads request bytes before NIO's parser does. On the wire that must
/// be invisible: answers in request order on pipelined connections, heads and bodies
/// split anywhere, unusual requests left to NIO, `Connection: close` honoured, and never
/// an answer older than the last write.
class ImmediatePathWireTests: RegistryTestCase {
    private var manifest: [UInt8] = []
    private var layerDigest = ""

    private func pushAndWarm(_ repository: String = "a/b") async throws {
        let config = Fixtures.bytes(100, seed: 11), layer = Fixtures.bytes(300, seed: 12)
        _ = try await client.pushBlob(repository, config)
        layerDigest = try await client.pushBlob(repository, layer)
        manifest = Fixtures.imageManifest(config: config, layers: [layer])
        let put = try await client.putManifest(repository, "v1", manifest)
        XCTAssertEqual(put.status, .created, put.text)
        // The full path fills the metadata cache; the next asks are answered immediately.
        for _ in 0..<2 {
            _ = try await client.send(.GET, "/v2/\(repository)/manifests/v1", headers: [("Accept", MediaType.ociManifest)])
            _ = try await client.send(.HEAD, "/v2/\(repository)/blobs/\(layerDigest)")
            _ = try await client.send(.GET, "/v2/\(repository)/tags/list")
        }
    }

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    func testPipelinedRequestsAreAnsweredInOrderAcrossBothPaths() async throws {
        try await pushAndWarm()
        let blob = Fixtures.bytes(5000, seed: 99)
        let digest = Fixtures.digest(blob)
        let getManifest = "GET /v2/a/b/manifests/v1 HTTP/1.1\r\nHost: x\r\nAccept: \(MediaType.ociManifest)\r\n\r\n"
        // One write: an immediate answer, an upload (full path, with a body), a HEAD of the
        // blob just uploaded (must see it: answered after the upload), the manifest again,
        // and the tag list that closes the connection.
        let pipelined =
            getManifest
            + "POST /v2/a/b/blobs/uploads/?digest=\(digest) HTTP/1.1\r\nHost: x\r\nContent-Length: \(blob.count)\r\n\r\n"
        let after =
            "HEAD /v2/a/b/blobs/\(digest) HTTP/1.1\r\nHost: x\r\n\r\n"
            + getManifest
            + "GET /v2/a/b/tags/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        let received = try await client.exchangeRaw([bytes(pipelined) + blob + bytes(after)])
        let answers = TestHTTPClient.splitAnswers(received, heads: [2])
        XCTAssertEqual(answers.map(\.status), [200, 201, 200, 200, 200], String(decoding: received, as: UTF8.self))
        guard answers.count == 5 else { return }
        XCTAssertEqual(answers[0].body, manifest)
        XCTAssertTrue(answers[2].headers.contains("Content-Length: 5000"), answers[2].headers)
        XCTAssertEqual(answers[3].body, manifest)
        XCTAssertEqual(String(decoding: answers[4].body, as: UTF8.self), #"{"name":"a/b","tags":["v1"]}"#)
        XCTAssertTrue(answers[4].headers.contains("Connection: close"), answers[4].headers)
    }

    func testHeadsAndBodiesSplitAcrossReadsAreAnswered() async throws {
        try await pushAndWarm()
        let head = "GET /v2/a/b/manifests/v1 HTTP/1.1\r\nHost: x\r\nAccept: \(MediaType.ociManifest)\r\n\r\n"
        let blob = Fixtures.bytes(3000, seed: 7)
        let upload =
            bytes("POST /v2/a/b/blobs/uploads/?digest=\(Fixtures.digest(blob)) HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n") + blob
        let last = bytes("GET /v2/a/b/tags/list HTTP/1.1\r\nConnection: close\r\n\r\n")
        // Cut in the request line, in a header, between CR and LF, in the body, and
        // across the end of one request and the start of the next.
        let all = bytes(head) + upload + last
        let cuts = [
            7, 30, head.utf8.count - 1, head.utf8.count + 40, head.utf8.count + upload.count - 1000, head.utf8.count + upload.count + 5,
        ]
        var pieces: [[UInt8]] = []
        var start = 0
        for cut in cuts {
            pieces.append(Array(all[start..<cut]))
            start = cut
        }
        pieces.append(Array(all[start...]))
        let answers = TestHTTPClient.splitAnswers(try await client.exchangeRaw(pieces))
        XCTAssertEqual(answers.map(\.status), [200, 201, 200])
        XCTAssertEqual(answers.first?.body, manifest)
    }

    func testChunkedBodiesAndOversizedHeadsAreLeftToNIO() async throws {
        try await pushAndWarm()
        // A chunked upload hands the connection to NIO's parser; what follows still works.
        let part = Fixtures.bytes(2000, seed: 5)
        let digest = Fixtures.digest(part)
        let chunked =
            bytes("POST /v2/a/b/blobs/uploads/?digest=\(digest) HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            + bytes(String(part.count, radix: 16) + "\r\n") + part + bytes("\r\n0\r\n\r\n")
            + bytes("GET /v2/a/b/manifests/v1 HTTP/1.1\r\nAccept: \(MediaType.ociManifest)\r\nConnection: close\r\n\r\n")
        let answers = TestHTTPClient.splitAnswers(try await client.exchangeRaw([chunked]))
        XCTAssertEqual(answers.map(\.status), [201, 200])
        XCTAssertEqual(answers.last?.body, manifest)

        // A head larger than the scanner reads (but within NIO's limit) is still answered.
        let padding = String(repeating: "p", count: 20_000)
        let large = try await client.exchangeRaw([
            bytes("GET /v2/a/b/tags/list HTTP/1.1\r\nX-Padding: \(padding)\r\nConnection: close\r\n\r\n")
        ])
        XCTAssertEqual(TestHTTPClient.splitAnswers(large).map(\.status), [200])

        // A bare LF is NIO's to judge: an answer, never a hang.
        let bare = try await client.exchangeRaw([bytes("GET /v2/a/b/tags/list HTTP/1.1\nConnection: close\n\n")], limit: .seconds(5))
        XCTAssertTrue(String(decoding: bare, as: UTF8.self).hasPrefix("HTTP/1.1 "), String(decoding: bare, as: UTF8.self))
    }

    func testImmediateAnswersHonourConnectionClose() async throws {
        try await pushAndWarm()
        let closed = try await client.sendRawUntilClosed(
            "GET /v2/a/b/manifests/v1 HTTP/1.1\r\nAccept: \(MediaType.ociManifest)\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(closed.head.hasPrefix("HTTP/1.1 200"), closed.head)
        XCTAssertTrue(closed.head.contains("Connection: close"), closed.head)
        XCTAssertEqual(closed.bodyBytes, manifest.count)
        // HTTP/1.0 closes unless asked to keep the connection, and a HEAD has no body.
        let old = try await client.sendRawUntilClosed("HEAD /v2/a/b/blobs/\(layerDigest) HTTP/1.0\r\n\r\n")
        XCTAssertTrue(old.head.hasPrefix("HTTP/1.0 200"), old.head)
        XCTAssertTrue(old.head.contains("Content-Length: 300"), old.head)
        XCTAssertEqual(old.bodyBytes, 0)
        let kept = try await client.sendRaw("HEAD /v2/a/b/blobs/\(layerDigest) HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        XCTAssertTrue(kept.contains("Connection: keep-alive"), kept)
    }

    func testALargeImmediateAnswerIsWhollySentBeforeTheConnectionCloses() async throws {
        // `Connection: close` after a 3 MiB answer: the connection may close only once the
        // answer was written (closing with it still queued drops it; with a slow reader a
        // large answer would be cut short).
        let config = Fixtures.bytes(100, seed: 21), layer = Fixtures.bytes(300, seed: 22)
        _ = try await client.pushBlob("big/m", config)
        _ = try await client.pushBlob("big/m", layer)
        let large = Fixtures.imageManifest(
            config: config, layers: [layer], annotations: ["padding": String(repeating: "p", count: 3 << 20)])
        let put = try await client.putManifest("big/m", "v1", large)
        XCTAssertEqual(put.status, .created, put.text)
        _ = try await client.send(.GET, "/v2/big/m/manifests/v1")  // fills the metadata cache
        for _ in 0..<3 {
            let closed = try await client.sendRawUntilClosed("GET /v2/big/m/manifests/v1 HTTP/1.1\r\nConnection: close\r\n\r\n")
            XCTAssertTrue(closed.head.hasPrefix("HTTP/1.1 200"), closed.head)
            XCTAssertEqual(closed.bodyBytes, large.count)
        }
    }

    func testAnAccountChangeEndsEncodedAnswersAtOnce() async throws {
        let staff = try await restartWithBasicAuthAndAPrivateImage()
        for _ in 0..<3 {
            let answered = try await client.send(.GET, "/v2/p/q/manifests/v1", headers: [staff])
            XCTAssertEqual(answered.status, .ok)
        }
        // The same request, byte for byte, once the user is gone: refused at once.
        await assertTrue(try await registry.metadata.deleteUser(named: "staff"))
        let refused = try await client.send(.GET, "/v2/p/q/manifests/v1", headers: [staff])
        XCTAssertEqual(refused.status, .unauthorized)
    }
}

/// The same tests with the immediate path off: every request through NIO's parser.
final class ImmediatePathWireTestsWithoutImmediateAnswers: ImmediatePathWireTests {
    override class var immediateAnswers: Bool { false }

    func testEveryReadTakesTheFullPath() async throws {
        try await assertEveryReadTakesTheFullPath()
    }
}
