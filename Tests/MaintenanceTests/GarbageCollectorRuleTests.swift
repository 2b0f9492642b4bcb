import Foundation
import Maintenance
import Metadata
import OCI
import RegistryTesting
import Storage
import XCTest

/// What a collection removes and what it keeps.
class GarbageCollectorRuleTests: RegistryTestCase {
    var collector: GarbageCollector!

    override func setUp() async throws {
        try await super.setUp()
        collector = GarbageCollector(metadata: registry.metadata, blobs: registry.blobs)
    }

    override func tearDown() async throws {
        collector = nil
        try await super.tearDown()
    }

    func collect(deleteUntagged: Bool = false, grace: Duration = .zero, dryRun: Bool = false) async throws -> GarbageCollector.Report {
        // No pause: grace 0 means everything unreferenced when the run starts, even what
        // was deleted a millisecond before (ages are kept in milliseconds).
        return try await collector.run(GarbageCollector.Options(dryRun: dryRun, deleteUntagged: deleteUntagged, grace: grace))
    }

    func stored(_ digest: String) async throws -> Bool {
        try await registry.blobs.size(of: Digest(parsing: digest)) != nil
    }

    /// Pushes config + layers and a manifest; returns (manifest bytes, blob digests).
    func pushImage(_ repository: String, tag: String?, layers: [[UInt8]], seed: UInt64) async throws -> ([UInt8], [String]) {
        let config = Fixtures.json(["seed": seed])
        var digests: [String] = []
        for blob in [config] + layers { digests.append(try await client.pushBlob(repository, blob)) }
        let manifest = Fixtures.imageManifest(config: config, layers: layers)
        let put = try await client.putManifest(repository, tag ?? Fixtures.digest(manifest), manifest)
        XCTAssertEqual(put.status, .created)
        return (manifest, digests)
    }

    func testSharedLayersStayWhileAnyRepositoryReferencesThem() async throws {
        let shared = Fixtures.bytes(3000, seed: 1)
        let (manifestA, blobsA) = try await pushImage("a", tag: "v1", layers: [shared], seed: 10)
        let (_, blobsB) = try await pushImage("b", tag: "v1", layers: [shared], seed: 20)
        let deleted = try await client.send(.DELETE, "/v2/a/manifests/\(Fixtures.digest(manifestA))")
        XCTAssertEqual(deleted.status, .accepted)
        let report = try await collect()
        XCTAssertEqual(report.blobs.map(\.digest.description), [blobsA[0]], "a's config goes; the shared layer stays for b")
        let configOfA = try await stored(blobsA[0])
        XCTAssertFalse(configOfA)
        for digest in blobsB {
            let kept = try await stored(digest)
            XCTAssertTrue(kept)
            let pulled = try await client.send(.GET, "/v2/b/blobs/\(digest)")
            XCTAssertEqual(pulled.status, .ok)
        }
    }

    func testGracePeriodProtectsRecentBlobs() async throws {
        let digest = try await client.pushBlob("a", Fixtures.bytes(100, seed: 3))
        let report = try await collect(grace: .seconds(3600))
        XCTAssertTrue(report.blobs.isEmpty && report.links.isEmpty)
        let kept = try await stored(digest)
        XCTAssertTrue(kept)
        let collected = try await collect(grace: .zero)
        XCTAssertEqual(collected.links.count, 1, "a layer no manifest uses is unlinked after the grace period")
        XCTAssertEqual(collected.blobs.map(\.digest.description), [digest])
    }

    func testIndexChildrenAndTaggedImagesStayUntaggedOnesGoOnlyWhenAsked() async throws {
        let (child, childBlobs) = try await pushImage("a", tag: nil, layers: [Fixtures.bytes(500, seed: 4)], seed: 30)
        let index = Fixtures.index(children: [(MediaType.ociManifest, child)])
        let putIndex = try await client.putManifest("a", "multi", index, mediaType: MediaType.ociIndex)
        XCTAssertEqual(putIndex.status, .created)
        let (loose, looseBlobs) = try await pushImage("a", tag: nil, layers: [Fixtures.bytes(500, seed: 5)], seed: 40)

        let keepUntagged = try await collect(deleteUntagged: false)
        XCTAssertTrue(keepUntagged.manifests.isEmpty, "untagged manifests stay unless asked")
        let untaggedGone = try await collect(deleteUntagged: true)
        XCTAssertEqual(untaggedGone.manifests.map(\.digest), [Fixtures.digest(loose)], "the index's child stays: the index refers to it")
        for digest in looseBlobs {
            let gone = try await stored(digest)
            XCTAssertFalse(gone)
        }
        for digest in childBlobs {
            let kept = try await stored(digest)
            XCTAssertTrue(kept)
        }
        let childStillThere = try await client.send(.GET, "/v2/a/manifests/\(Fixtures.digest(child))")
        XCTAssertEqual(childStillThere.status, .ok)
    }

    func testReferrersGoWithTheirSubject() async throws {
        let (subject, _) = try await pushImage("a", tag: "v1", layers: [Fixtures.bytes(300, seed: 6)], seed: 50)
        let empty = Array("{}".utf8)
        try await client.pushBlob("a", empty)
        let signature = Fixtures.imageManifest(
            config: empty, layers: [], subject: Fixtures.descriptor(MediaType.ociManifest, subject),
            artifactType: "application/vnd.example.signature", configMediaType: MediaType.ociEmpty)
        _ = try await client.putManifest("a", Fixtures.digest(signature), signature)
        let whileSubjectLives = try await collect(deleteUntagged: true)
        XCTAssertTrue(whileSubjectLives.manifests.isEmpty, "a referrer of a live subject is kept, untagged or not")
        _ = try await client.send(.DELETE, "/v2/a/manifests/\(Fixtures.digest(subject))")
        let afterSubject = try await collect()
        XCTAssertEqual(afterSubject.manifests.map(\.digest), [Fixtures.digest(signature)], "a referrer whose subject is gone goes")
    }

    func testDryRunListsButChangesNothing() async throws {
        let digest = try await client.pushBlob("a", Fixtures.bytes(100, seed: 7))
        let report = try await collect(dryRun: true)
        XCTAssertEqual(report.links.count, 1)
        let kept = try await stored(digest)
        XCTAssertTrue(kept)
        let stillLinked = try await client.send(.HEAD, "/v2/a/blobs/\(digest)")
        XCTAssertEqual(stillLinked.status, .ok)
    }
}

final class GarbageCollectorRuleTestsOnPostgres: GarbageCollectorRuleTests {
    override class var metadataKind: TestRegistry.MetadataKind { .postgres }

    func testTheMetadataIsOnPostgres() {
        XCTAssertTrue(registry.metadata is PostgresMetadataStore)
    }
}
