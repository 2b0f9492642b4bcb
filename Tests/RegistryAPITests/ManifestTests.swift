import Metadata
import NIOHTTP1
import OCI
import RegistryAPI
import RegistryTesting
import XCTest

/// Spec: "Pushing Manifests", "Pulling manifests", "Deleting Manifests".
class ManifestTests: RegistryTestCase {
    /// Pushes a config and two layers and returns an image manifest over them.
    func pushImage(_ repository: String, mediaType: String = MediaType.ociManifest, seed: UInt64 = 1) async throws -> [UInt8] {
        let config = Fixtures.json(["architecture": "amd64", "os": "linux", "seed": seed])
        let layers = [Fixtures.bytes(1000, seed: seed), Fixtures.bytes(2000, seed: seed + 100)]
        try await client.pushBlob(repository, config)
        for layer in layers { try await client.pushBlob(repository, layer) }
        return Fixtures.imageManifest(mediaType: mediaType, config: config, layers: layers)
    }

    func testPutByTagThenGetByTagAndDigestIsByteExact() async throws {
        let manifest = try await pushImage("a")
        let digest = Fixtures.digest(manifest)
        let put = try await client.putManifest("a", "v1", manifest)
        XCTAssertEqual(put.status, .created, put.text)
        XCTAssertEqual(put.header("Docker-Content-Digest"), digest)
        XCTAssertEqual(put.header("Location"), "/v2/a/manifests/\(digest)")
        for reference in ["v1", digest] {
            let get = try await client.send(.GET, "/v2/a/manifests/\(reference)", headers: [("Accept", MediaType.ociManifest)])
            XCTAssertEqual(get.status, .ok)
            XCTAssertEqual(get.body, manifest)
            XCTAssertEqual(get.header("Content-Type"), MediaType.ociManifest)
            XCTAssertEqual(get.header("Docker-Content-Digest"), digest)
            let head = try await client.send(.HEAD, "/v2/a/manifests/\(reference)")
            XCTAssertEqual(head.status, .ok)
            XCTAssertEqual(head.header("Content-Length"), String(manifest.count))
            XCTAssertEqual(head.body, [])
        }
    }

    func testDockerSchema2AndManifestListAreFirstClass() async throws {
        let image = try await pushImage("a", mediaType: MediaType.dockerManifest)
        let imagePut = try await client.putManifest("a", Fixtures.digest(image), image, mediaType: MediaType.dockerManifest).status
        XCTAssertEqual(imagePut, .created)
        let list = Fixtures.index(mediaType: MediaType.dockerManifestList, children: [(MediaType.dockerManifest, image)])
        let put = try await client.putManifest("a", "multi", list, mediaType: MediaType.dockerManifestList)
        XCTAssertEqual(put.status, .created, put.text)
        let get = try await client.send(.GET, "/v2/a/manifests/multi", headers: [("Accept", MediaType.dockerManifestList)])
        XCTAssertEqual(get.header("Content-Type"), MediaType.dockerManifestList)
        XCTAssertEqual(get.body, list)
    }

    func testMissingBlobIsManifestBlobUnknown() async throws {
        let config = Fixtures.json(["os": "linux"])
        try await client.pushBlob("a", config)
        let manifest = Fixtures.imageManifest(config: config, layers: [Fixtures.bytes(10)])
        let put = try await client.putManifest("a", "v1", manifest)
        XCTAssertEqual(put.status, .badRequest)
        XCTAssertEqual(put.errorCodes, ["MANIFEST_BLOB_UNKNOWN"])
        let getAfterRefusal = try await client.send(.GET, "/v2/a/manifests/v1").status
        XCTAssertEqual(getAfterRefusal, .notFound)
    }

    func testBlobOfAnotherRepositoryDoesNotSatisfyAManifest() async throws {
        let manifest = try await pushImage("elsewhere")
        let put = try await client.putManifest("a", "v1", manifest)
        XCTAssertEqual(put.errorCodes, ["MANIFEST_BLOB_UNKNOWN"])
    }

    func testForeignLayerWithURLsNeedsNoBlob() async throws {
        let config = Fixtures.json(["os": "windows"])
        try await client.pushBlob("a", config)
        let foreign: [String: Any] = [
            "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "digest": Fixtures.digest(Fixtures.bytes(5)), "size": 5, "urls": ["https://example.invalid/layer"],
        ]
        let manifest = Fixtures.imageManifest(mediaType: MediaType.dockerManifest, config: config, layers: [], extraLayers: [foreign])
        let put = try await client.putManifest("a", "win", manifest, mediaType: MediaType.dockerManifest)
        XCTAssertEqual(put.status, .created, put.text)
    }

    func testMissingSubjectIsAcceptedAndAnnouncedInOCISubject() async throws {
        let subject: [String: Any] = ["mediaType": MediaType.ociManifest, "digest": Fixtures.digest([9, 9]), "size": 2]
        let config = Array("{}".utf8)
        try await client.pushBlob("a", config)
        let manifest = Fixtures.imageManifest(
            config: config, layers: [], subject: subject, artifactType: "application/vnd.example.sbom", configMediaType: MediaType.ociEmpty)
        let put = try await client.putManifest("a", Fixtures.digest(manifest), manifest)
        XCTAssertEqual(put.status, .created, put.text)
        XCTAssertEqual(put.header("OCI-Subject"), Fixtures.digest([9, 9]))
    }

    func testContentTypeMustAgreeWithMediaType() async throws {
        // CVE-2021-41190: the same bytes must not be read as two different types.
        let manifest = try await pushImage("a")
        let put = try await client.putManifest("a", "v1", manifest, mediaType: MediaType.ociIndex)
        XCTAssertEqual(put.status, .badRequest)
        XCTAssertEqual(put.errorCodes, ["MANIFEST_INVALID"])
    }

    func testDocumentWithBothManifestsAndLayersIsRejected() async throws {
        let config = Fixtures.json(["os": "linux"])
        try await client.pushBlob("a", config)
        let ambiguous = Fixtures.json([
            "schemaVersion": 2,
            "config": Fixtures.descriptor(MediaType.ociEmpty, config),
            "layers": [] as [Any],
            "manifests": [] as [Any],
        ])
        for contentType in [MediaType.ociManifest, MediaType.ociIndex] {
            let put = try await client.putManifest("a", "v1", ambiguous, mediaType: contentType)
            XCTAssertEqual(put.status, .badRequest)
            XCTAssertEqual(put.errorCodes, ["MANIFEST_INVALID"])
        }
    }

    func testManifestOver4MiBIs413() async throws {
        var huge = Array("{\"schemaVersion\":2,\"annotations\":{\"x\":\"".utf8)
        huge += [UInt8](repeating: UInt8(ascii: "a"), count: 4 * 1024 * 1024)
        huge += Array("\"}}".utf8)
        let put = try await client.putManifest("a", "v1", huge)
        XCTAssertEqual(put.status, .payloadTooLarge)
        let chunked = try await client.send(
            .PUT, "/v2/a/manifests/v1", headers: [("Content-Type", MediaType.ociManifest)], body: .chunked([huge]))
        XCTAssertEqual(chunked.status, .payloadTooLarge, "a body without Content-Length is cut off too")
    }

    func testMalformedManifestsAreRejected() async throws {
        let bodies: [[UInt8]] = [
            Array("not json".utf8),
            Array("{}".utf8),
            Fixtures.json([
                "schemaVersion": 1, "mediaType": MediaType.ociManifest, "config": Fixtures.descriptor("x", [1]), "layers": [] as [Any],
            ]),
            Fixtures.json([
                "schemaVersion": 2, "mediaType": MediaType.ociManifest,
                "config": ["mediaType": "x", "digest": "sha256:../../etc/passwd", "size": 1], "layers": [] as [Any],
            ]),
            Fixtures.json([
                "schemaVersion": 2, "mediaType": MediaType.ociManifest,
                "config": ["mediaType": "x", "digest": Fixtures.digest([1]), "size": -1], "layers": [] as [Any],
            ]),
            Fixtures.json(["schemaVersion": 2, "mediaType": "application/vnd.example.unknown"]),
        ]
        for body in bodies {
            let put = try await client.putManifest("a", "v1", body, mediaType: "application/json")
            XCTAssertEqual(put.status, .badRequest, String(decoding: body, as: UTF8.self))
            XCTAssertEqual(put.errorCodes, ["MANIFEST_INVALID"])
        }
        let schema1 = try await client.putManifest(
            "a", "v1", Fixtures.json(["schemaVersion": 1, "fsLayers": [] as [Any]]), mediaType: MediaType.dockerSchema1Signed)
        XCTAssertEqual(schema1.errorCodes, ["MANIFEST_INVALID"])
    }

    func testIndexChildrenMustExist() async throws {
        let image = try await pushImage("a")
        let index = Fixtures.index(children: [(MediaType.ociManifest, image)])
        let put = try await client.putManifest("a", "multi", index, mediaType: MediaType.ociIndex)
        XCTAssertEqual(put.status, .badRequest)
        XCTAssertEqual(put.errorCodes, ["MANIFEST_BLOB_UNKNOWN"])
        _ = try await client.putManifest("a", Fixtures.digest(image), image)
        let retry = try await client.putManifest("a", "multi", index, mediaType: MediaType.ociIndex)
        XCTAssertEqual(retry.status, .created, retry.text)
    }

    func testSparseIndexIsAcceptedWhenSwitchedOn() async throws {
        var configuration = Registry.Configuration()
        configuration.allowSparseIndexes = true
        let sparse = try await TestRegistry.start(configuration: configuration, immediateAnswers: Self.immediateAnswers)
        let index = Fixtures.index(children: [(MediaType.ociManifest, Fixtures.json(["absent": true]))])
        let put = try await sparse.client.putManifest("mirror", "partial", index, mediaType: MediaType.ociIndex)
        XCTAssertEqual(put.status, .created, put.text)
        XCTAssertNotNil(put.header("Warning"))
        await sparse.stop()
    }

    func testPutByDigestChecksTheDigest() async throws {
        let manifest = try await pushImage("a")
        let wrong = Fixtures.digest(Fixtures.bytes(3))
        let put = try await client.putManifest("a", wrong, manifest)
        XCTAssertEqual(put.status, .badRequest)
        XCTAssertEqual(put.errorCodes, ["DIGEST_INVALID"])
        let sha512 = try await client.putManifest("a", Fixtures.digest(manifest, .sha512), manifest)
        XCTAssertEqual(sha512.status, .created, "a manifest may be addressed by its sha512 digest")
    }

    func testPutWithSeveralTagsAnswersOCITagPerTag() async throws {
        let manifest = try await pushImage("a")
        let digest = Fixtures.digest(manifest)
        let put = try await client.putManifest("a", "\(digest)?tag=one&tag=two&tag=three", manifest)
        XCTAssertEqual(put.status, .created, put.text)
        XCTAssertEqual(put.headers["OCI-Tag"], ["one", "two", "three"])
        let tags = try await client.send(.GET, "/v2/a/tags/list")
        XCTAssertEqual(try tags.json()["tags"] as? [String], ["one", "three", "two"])
        let bad = try await client.putManifest("a", "\(digest)?tag=ok&tag=-bad", manifest)
        XCTAssertEqual(bad.errorCodes, ["TAG_INVALID"])
    }

    func testAReferenceThatCannotNameAManifestIsUnknownExceptToPut() async throws {
        let manifest = try await pushImage("a")
        _ = try await client.putManifest("a", "v1", manifest)
        // The OCI conformance suite's ".INVALID_MANIFEST_NAME", a malformed digest, an
        // unsupported algorithm and an over-long tag: nothing can be stored under them.
        let references = [
            ".INVALID_MANIFEST_NAME", "sha256:xyz", "md5:d41d8cd98f00b204e9800998ecf8427e", String(repeating: "t", count: 129),
        ]
        for reference in references {
            for method in [HTTPMethod.GET, .HEAD, .DELETE] {
                let response = try await client.send(method, "/v2/a/manifests/\(reference)")
                XCTAssertEqual(response.status, .notFound, "\(method) \(reference)")
                if method != .HEAD { XCTAssertEqual(response.errorCodes, ["MANIFEST_UNKNOWN"], "\(method) \(reference)") }
            }
        }
        let put = try await client.putManifest("a", ".INVALID_MANIFEST_NAME", manifest)
        XCTAssertEqual(put.status, .badRequest)
        XCTAssertEqual(put.errorCodes, ["TAG_INVALID"])
        let putByBadDigest = try await client.putManifest("a", "sha256:xyz", manifest)
        XCTAssertEqual(putByBadDigest.errorCodes, ["DIGEST_INVALID"])
        let stillThere = try await client.send(.GET, "/v2/a/manifests/v1")
        XCTAssertEqual(stillThere.body, manifest, "a refused DELETE changed nothing")
    }

    func testAcceptIsNegotiatedAcrossSeveralHeaderLines() async throws {
        let manifest = try await pushImage("a")
        _ = try await client.putManifest("a", "v1", manifest)
        let split = try await client.send(
            .GET, "/v2/a/manifests/v1",
            headers: [("Accept", MediaType.dockerManifest), ("Accept", "\(MediaType.ociIndex), \(MediaType.ociManifest);q=0.9")])
        XCTAssertEqual(split.status, .ok)
        let refused = try await client.send(.GET, "/v2/a/manifests/v1", headers: [("Accept", MediaType.dockerManifest)])
        XCTAssertEqual(refused.status, .notFound)
        XCTAssertEqual(refused.errorCodes, ["MANIFEST_UNKNOWN"])
    }

    func testDeleteByTagRemovesOnlyTheTag() async throws {
        let manifest = try await pushImage("a")
        let digest = Fixtures.digest(manifest)
        _ = try await client.putManifest("a", "v1", manifest)
        let deleteTag = try await client.send(.DELETE, "/v2/a/manifests/v1").status
        XCTAssertEqual(deleteTag, .accepted)
        let getTag = try await client.send(.GET, "/v2/a/manifests/v1").status
        XCTAssertEqual(getTag, .notFound)
        let getDigest = try await client.send(.GET, "/v2/a/manifests/\(digest)").status
        XCTAssertEqual(getDigest, .ok)
    }

    func testDeleteByDigestRemovesManifestAndItsTags() async throws {
        let manifest = try await pushImage("a")
        let digest = Fixtures.digest(manifest)
        _ = try await client.putManifest("a", "v1", manifest)
        let deleteDigest = try await client.send(.DELETE, "/v2/a/manifests/\(digest)").status
        XCTAssertEqual(deleteDigest, .accepted)
        let getDeletedDigest = try await client.send(.GET, "/v2/a/manifests/\(digest)").status
        XCTAssertEqual(getDeletedDigest, .notFound)
        let getDeletedTag = try await client.send(.GET, "/v2/a/manifests/v1").status
        XCTAssertEqual(getDeletedTag, .notFound)
        let history = try await registry.metadata.tagHistory(Tag(parsing: "v1"), in: RepositoryName(parsing: "a"))
        XCTAssertEqual(history.map(\.newDigest), [nil, digest], "deleting the manifest is recorded as a tag move")
    }

    func testUnknownManifestIs404() async throws {
        let response = try await client.send(.GET, "/v2/a/manifests/nope")
        XCTAssertEqual(response.status, .notFound)
        XCTAssertEqual(response.errorCodes, ["MANIFEST_UNKNOWN"])
    }
}

/// The same tests with the immediate path off: every request through NIO's parser.
final class ManifestTestsWithoutImmediateAnswers: ManifestTests {
    override class var immediateAnswers: Bool { false }

    func testEveryReadTakesTheFullPath() async throws {
        try await assertEveryReadTakesTheFullPath()
    }
}

final class ManifestTestsOnPostgres: ManifestTests {
    override class var metadataKind: TestRegistry.MetadataKind { .postgres }

    func testTheMetadataIsOnPostgres() {
        XCTAssertTrue(registry.metadata is PostgresMetadataStore)
    }
}
