import Foundation
import Maintenance
import Metadata
import NIOCore
import OCI
import RegistryTesting
import Storage
import XCTest

/// `storage.verify`: rows without bytes, bytes without rows, wrong bytes; and repair.
class StorageVerifierTests: RegistryTestCase {
    var verifier: StorageVerifier { StorageVerifier(metadata: registry.metadata, blobs: registry.blobs) }

    func write(_ bytes: [UInt8], at path: StoragePath) async throws {
        try await registry.blobs.driver.delete(path)
        let appender = try await registry.blobs.driver.appender(for: path, truncatingTo: 0)
        try await appender.append(ByteBuffer(bytes: bytes))
        try await appender.close()
    }

    func testFindsEveryDisagreementAndRepairs() async throws {
        let good = try await client.pushBlob("a", Fixtures.bytes(1000, seed: 1))
        let clean = try await verifier.verify(sample: nil, repair: false)
        XCTAssertTrue(clean.isClean)
        XCTAssertEqual(clean.rehashed, 1)

        let corrupted = try await client.pushBlob("a", Fixtures.bytes(1000, seed: 2))
        try await write(Fixtures.bytes(1000, seed: 3), at: BlobStore.path(for: Digest(parsing: corrupted)))
        let vanished = try await client.pushBlob("a", Fixtures.bytes(1000, seed: 4))
        try await registry.blobs.driver.delete(BlobStore.path(for: Digest(parsing: vanished)))
        let stray = Digest.of(Fixtures.bytes(10, seed: 5))
        try await write(Fixtures.bytes(10, seed: 5), at: BlobStore.path(for: stray))

        let found = try await verifier.verify(sample: nil, repair: false)
        XCTAssertFalse(found.isClean)
        XCTAssertEqual(found.corrupt, [corrupted])
        XCTAssertEqual(found.missingBytes, [vanished])
        XCTAssertEqual(found.orphanedBytes, [stray.description])
        let servedBeforeRepair = try await client.send(.GET, "/v2/a/blobs/\(corrupted)")
        XCTAssertEqual(servedBeforeRepair.status, .ok, "without repair nothing changes")

        let repaired = try await verifier.verify(sample: nil, repair: true)
        XCTAssertEqual(repaired.corrupt, [corrupted])
        let quarantined = try await client.send(.GET, "/v2/a/blobs/\(corrupted)")
        XCTAssertEqual(quarantined.status, .notFound, "corrupt bytes are no longer served")
        let strayLeft = try await registry.blobs.size(of: stray)
        XCTAssertNil(strayLeft)
        let goodLeft = try await client.send(.GET, "/v2/a/blobs/\(good)")
        XCTAssertEqual(goodLeft.status, .ok)
    }
}

final class StorageVerifierTestsOnPostgres: StorageVerifierTests {
    override class var metadataKind: TestRegistry.MetadataKind { .postgres }

    func testTheMetadataIsOnPostgres() {
        XCTAssertTrue(registry.metadata is PostgresMetadataStore)
    }
}
