import Foundation
import HTTPTransport
import NIOHTTP1
import OCI
import RegistryAPI
import RegistryTesting
import XCTest

/// The immediate path (answers from memory on the event loop) gives exactly the full
/// path's answers, only for what it may answer, and never an answer older than a write.
final class ImmediateReadTests: RegistryTestCase {
    private func head(_ method: HTTPMethod, _ uri: String, _ headers: [(String, String)] = []) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: HTTPHeaders(headers))
    }

    private func immediate(_ method: HTTPMethod, _ uri: String, _ headers: [(String, String)] = []) -> HTTPResponse? {
        registry.recorder.respondImmediately(to: head(method, uri, headers), remoteAddress: "127.0.0.1")
    }

    private func pushImage(_ repository: String, tag: String, seed: UInt64) async throws -> (manifest: [UInt8], layer: String) {
        let config = Fixtures.bytes(100, seed: seed), layer = Fixtures.bytes(300, seed: seed + 1)
        _ = try await client.pushBlob(repository, config)
        let layerDigest = try await client.pushBlob(repository, layer)
        let manifest = Fixtures.imageManifest(config: config, layers: [layer])
        let put = try await client.putManifest(repository, tag, manifest)
        XCTAssertEqual(put.status, .created, put.text)
        return (manifest, layerDigest)
    }

    func testCachedReadsAreAnsweredImmediatelyWithTheFullPathsAnswer() async throws {
        let (manifest, layer) = try await pushImage("a/b", tag: "v1", seed: 1)
        XCTAssertNil(immediate(.GET, "/v2/a/b/manifests/v1"), "nothing cached yet: the full path answers")
        let full = try await client.send(.GET, "/v2/a/b/manifests/v1", headers: [("Accept", MediaType.ociManifest)])
        XCTAssertEqual(full.body, manifest)

        let answer = try XCTUnwrap(immediate(.GET, "/v2/a/b/manifests/v1", [("Accept", MediaType.ociManifest)]))
        XCTAssertEqual(answer.status, .ok)
        XCTAssertEqual(answer.headers.first(name: "Docker-Content-Digest"), full.header("Docker-Content-Digest"))
        XCTAssertEqual(answer.headers.first(name: "Content-Type"), full.header("Content-Type"))
        guard case .bytes(let body) = answer.body else { return XCTFail("a manifest answer carries its bytes") }
        XCTAssertEqual(Array(body.readableBytesView), manifest)
        // Over the wire, served from memory, the answer is the same.
        let again = try await client.send(.GET, "/v2/a/b/manifests/v1", headers: [("Accept", MediaType.ociManifest)])
        XCTAssertEqual(again.body, manifest)
        XCTAssertEqual(again.header("Docker-Distribution-API-Version"), "registry/2.0")

        // An Accept that excludes the type: the full path gives the 404 with its reason.
        XCTAssertNil(immediate(.GET, "/v2/a/b/manifests/v1", [("Accept", MediaType.dockerManifest)]))

        _ = try await client.send(.GET, "/v2/a/b/tags/list")
        let tags = try XCTUnwrap(immediate(.GET, "/v2/a/b/tags/list"))
        guard case .bytes(let tagBody) = tags.body else { return XCTFail("a tag list has a body") }
        XCTAssertEqual(String(buffer: tagBody), #"{"name":"a\/b","tags":["v1"]}"#.replacingOccurrences(of: "\\/", with: "/"))

        _ = try await client.send(.HEAD, "/v2/a/b/blobs/\(layer)")
        let blobHead = try XCTUnwrap(immediate(.HEAD, "/v2/a/b/blobs/\(layer)"))
        XCTAssertEqual(blobHead.headers.first(name: "Content-Length"), "300")
        XCTAssertNil(immediate(.GET, "/v2/a/b/blobs/\(layer)"), "blob bytes always take the full path")
        XCTAssertNil(immediate(.HEAD, "/v2/a/b/blobs/\(layer)", [("Range", "bytes=0-1")]))
        XCTAssertNil(immediate(.PUT, "/v2/a/b/manifests/v1"))
    }

    func testAWriteMakesTheImmediateAnswerCurrent() async throws {
        _ = try await pushImage("a/b", tag: "v1", seed: 1)
        // The first GET fills the metadata cache, the second leaves an encoded answer.
        _ = try await client.send(.GET, "/v2/a/b/manifests/v1")
        _ = try await client.send(.GET, "/v2/a/b/manifests/v1")
        XCTAssertNotNil(immediate(.GET, "/v2/a/b/manifests/v1"))
        let (second, _) = try await pushImage("a/b", tag: "v1", seed: 5)
        XCTAssertNil(immediate(.GET, "/v2/a/b/manifests/v1"), "the push emptied the cache")
        let moved = try await client.send(.GET, "/v2/a/b/manifests/v1")
        XCTAssertEqual(moved.body, second)
        let deleted = try await client.send(.DELETE, "/v2/a/b/manifests/\(Fixtures.digest(second))")
        XCTAssertEqual(deleted.status, .accepted)
        let gone = try await client.send(.GET, "/v2/a/b/manifests/v1")
        XCTAssertEqual(gone.status, .notFound)
    }

    private func status(_ uri: String, _ headers: [(String, String)] = []) async throws -> HTTPResponseStatus {
        try await client.send(.GET, uri, headers: headers).status
    }

    func testWithBasicAuthOnlyKnownCallersAreAnsweredImmediately() async throws {
        let staff = try await restartWithBasicAuthAndAPrivateImage()
        let wrong = ("Authorization", "Basic " + Data("staff:wrong-password".utf8).base64EncodedString())

        // Staff, verified once by the full path, is then known from memory.
        var answered = try await status("/v2/p/q/manifests/v1", [staff])
        XCTAssertEqual(answered, .ok)
        XCTAssertNotNil(immediate(.GET, "/v2/p/q/manifests/v1", [staff]))
        // A wrong password, and an anonymous caller of a private repository, get their
        // 401 from the full path.
        XCTAssertNil(immediate(.GET, "/v2/p/q/manifests/v1", [wrong]))
        XCTAssertNil(immediate(.GET, "/v2/p/q/manifests/v1"))
        answered = try await status("/v2/p/q/manifests/v1")
        XCTAssertEqual(answered, .unauthorized)
        XCTAssertNil(immediate(.GET, "/v2/p/q/manifests/v1"), "still private")

        // Made public, anonymous reads are answered from memory once the full path saw one.
        await assertTrue(try await registry.metadata.setPublic(true, repository: RepositoryName(parsing: "p/q")))
        answered = try await status("/v2/p/q/manifests/v1")
        XCTAssertEqual(answered, .ok)
        XCTAssertNotNil(immediate(.GET, "/v2/p/q/manifests/v1"))
        // Private again: the write empties the cache, the anonymous caller is refused.
        await assertTrue(try await registry.metadata.setPublic(false, repository: RepositoryName(parsing: "p/q")))
        XCTAssertNil(immediate(.GET, "/v2/p/q/manifests/v1"))
        answered = try await status("/v2/p/q/manifests/v1")
        XCTAssertEqual(answered, .unauthorized)
    }
}
