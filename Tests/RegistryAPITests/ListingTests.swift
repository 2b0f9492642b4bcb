import Metadata
import NIOHTTP1
import OCI
import RegistryTesting
import XCTest

/// Spec: "Listing Tags", catalog, and "Listing Referrers".
class ListingTests: RegistryTestCase {
    func pushTaggedArtifact(_ repository: String, tags: [String]) async throws -> [UInt8] {
        let config = Array("{}".utf8)
        try await client.pushBlob(repository, config)
        let manifest = Fixtures.imageManifest(config: config, layers: [], configMediaType: MediaType.ociEmpty)
        let query = tags.map { "tag=\($0)" }.joined(separator: "&")
        let put = try await client.putManifest(repository, "\(Fixtures.digest(manifest))?\(query)", manifest)
        XCTAssertEqual(put.status, .created)
        return manifest
    }

    func testDocumentedPushFlowListsTheTag() async throws {
        _ = try await pushTaggedArtifact("test/this", tags: ["mytag1.8"])
        let response = try await client.send(.GET, "/v2/test/this/tags/list")
        XCTAssertEqual(response.status, .ok)
        XCTAssertEqual(response.text, #"{"name":"test/this","tags":["mytag1.8"]}"#)
    }

    func testTagsAreSortedAndPagedWithLink() async throws {
        _ = try await pushTaggedArtifact("a", tags: ["c", "a", "e", "b", "d"])
        let first = try await client.send(.GET, "/v2/a/tags/list?n=2")
        XCTAssertEqual(try first.json()["tags"] as? [String], ["a", "b"])
        XCTAssertEqual(first.header("Link"), "</v2/a/tags/list?n=2&last=b>; rel=\"next\"")
        let second = try await client.send(.GET, "/v2/a/tags/list?n=2&last=b")
        XCTAssertEqual(try second.json()["tags"] as? [String], ["c", "d"])
        let last = try await client.send(.GET, "/v2/a/tags/list?n=2&last=d")
        XCTAssertEqual(try last.json()["tags"] as? [String], ["e"])
        XCTAssertNil(last.header("Link"))
        let none = try await client.send(.GET, "/v2/a/tags/list?n=0")
        XCTAssertEqual(try none.json()["tags"] as? [String], [])
    }

    func testHugeNIsClampedAndBadNRejected() async throws {
        // CVE-2023-2253: an attacker-chosen n must not size an allocation.
        _ = try await pushTaggedArtifact("a", tags: ["x"])
        let huge = try await client.send(.GET, "/v2/a/tags/list?n=99999999999")
        XCTAssertEqual(huge.status, .ok)
        XCTAssertNotNil(huge.header("Warning"))
        for bad in ["-1", "abc", "1e9"] {
            let response = try await client.send(.GET, "/v2/a/tags/list?n=\(bad)")
            XCTAssertEqual(response.status, .badRequest, bad)
            XCTAssertEqual(response.errorCodes, ["PAGINATION_NUMBER_INVALID"])
        }
        let catalog = try await client.send(.GET, "/v2/_catalog?n=9223372036854775807")
        XCTAssertEqual(catalog.status, .ok)
    }

    func testTagsOfUnknownRepositoryIsNameUnknown() async throws {
        let response = try await client.send(.GET, "/v2/nothing/here/tags/list")
        XCTAssertEqual(response.status, .notFound)
        XCTAssertEqual(response.errorCodes, ["NAME_UNKNOWN"])
    }

    func testCatalogIsSortedAndPaged() async throws {
        for name in ["zeta", "alpha/one", "mid"] { _ = try await pushTaggedArtifact(name, tags: ["t"]) }
        let all = try await client.send(.GET, "/v2/_catalog")
        XCTAssertEqual(try all.json()["repositories"] as? [String], ["alpha/one", "mid", "zeta"])
        let page = try await client.send(.GET, "/v2/_catalog?n=1&last=alpha/one")
        XCTAssertEqual(try page.json()["repositories"] as? [String], ["mid"])
        XCTAssertEqual(page.header("Link"), "</v2/_catalog?n=1&last=mid>; rel=\"next\"")
    }

    func testReferrersListsManifestsWithThatSubject() async throws {
        let subject = try await pushTaggedArtifact("a", tags: ["v1"])
        let subjectDescriptor = Fixtures.descriptor(MediaType.ociManifest, subject)
        let config = Array("{}".utf8)
        var referrers: [String: [UInt8]] = [:]
        for type in ["application/vnd.example.sbom", "application/vnd.example.signature"] {
            let manifest = Fixtures.imageManifest(
                config: config, layers: [], subject: subjectDescriptor, artifactType: type,
                configMediaType: MediaType.ociEmpty, annotations: ["org.example.kind": type])
            let put = try await client.putManifest("a", Fixtures.digest(manifest), manifest)
            XCTAssertEqual(put.status, .created)
            referrers[type] = manifest
        }
        let all = try await client.send(.GET, "/v2/a/referrers/\(Fixtures.digest(subject))")
        XCTAssertEqual(all.status, .ok)
        XCTAssertEqual(all.header("Content-Type"), MediaType.ociIndex)
        let manifests = try XCTUnwrap(try all.json()["manifests"] as? [[String: Any]])
        XCTAssertEqual(Set(manifests.compactMap { $0["artifactType"] as? String }), Set(referrers.keys))
        let sbom = try XCTUnwrap(manifests.first { $0["artifactType"] as? String == "application/vnd.example.sbom" })
        XCTAssertEqual(sbom["digest"] as? String, Fixtures.digest(referrers["application/vnd.example.sbom"]!))
        XCTAssertEqual(sbom["size"] as? Int, referrers["application/vnd.example.sbom"]!.count)
        XCTAssertEqual((sbom["annotations"] as? [String: String])?["org.example.kind"], "application/vnd.example.sbom")

        let filtered = try await client.send(
            .GET, "/v2/a/referrers/\(Fixtures.digest(subject))?artifactType=application/vnd.example.signature")
        XCTAssertEqual(filtered.header("OCI-Filters-Applied"), "artifactType")
        XCTAssertEqual((try filtered.json()["manifests"] as? [Any])?.count, 1)
    }

    func testReferrersOfUnknownDigestIsAnEmptyIndex() async throws {
        let response = try await client.send(.GET, "/v2/a/referrers/\(Fixtures.digest([1]))")
        XCTAssertEqual(response.status, .ok)
        XCTAssertEqual((try response.json()["manifests"] as? [Any])?.count, 0)
        let bad = try await client.send(.GET, "/v2/a/referrers/sha256:nope")
        XCTAssertEqual(bad.status, .badRequest)
        XCTAssertEqual(bad.errorCodes, ["DIGEST_INVALID"])
    }
}

/// The same tests with the immediate path off: every request through NIO's parser.
final class ListingTestsWithoutImmediateAnswers: ListingTests {
    override class var immediateAnswers: Bool { false }

    func testEveryReadTakesTheFullPath() async throws {
        try await assertEveryReadTakesTheFullPath()
    }
}

final class ListingTestsOnPostgres: ListingTests {
    override class var metadataKind: TestRegistry.MetadataKind { .postgres }

    func testTheMetadataIsOnPostgres() {
        XCTAssertTrue(registry.metadata is PostgresMetadataStore)
    }
}
