import Foundation
import Maintenance
import Metadata
import NIOCore
import OCI
import RegistryTesting
import Storage
import XCTest

/// Pins left by a process killed between an upload's digest check and its link: each
/// instance releases its own when it starts again, and a pin counts only while its
/// instance's lease runs.
final class InterruptedUploadTests: XCTestCase {
    var directory: String!
    let blobs = BlobStore(driver: MemoryDriver())
    let digest = Digest.of(Fixtures.bytes(100, seed: 7))

    override func setUp() async throws {
        directory = try makeTemporaryDirectory(prefix: "registryd-pins")
    }

    override func tearDown() async throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func open(_ instance: String, lease: Duration = InstanceLease.duration) throws -> SQLiteMetadataStore {
        try SQLiteMetadataStore(path: directory + "/registry.db", instance: instance, leaseDuration: lease)
    }

    func verify(_ store: SQLiteMetadataStore) async throws -> StorageVerifier.Report {
        try await StorageVerifier(metadata: store, blobs: blobs).verify(sample: nil, repair: false)
    }

    func collect(_ store: SQLiteMetadataStore) async throws -> GarbageCollector.Report {
        try await GarbageCollector(metadata: store, blobs: blobs).run(GarbageCollector.Options(grace: .zero))
    }

    func testADeletionAKilledRunLeftMarkedIsFinishedAtStartAndTheBlobCanBePushedAgain() async throws {
        // A repair killed between marking orphaned bytes and deleting them: the row stays
        // `deleting`, which no upload may pin, and verification skips it.
        let store = try open("a")
        let id = UploadID.generate()
        let appender = try await blobs.driver.appender(for: BlobStore.path(forUpload: id), truncatingTo: nil)
        try await appender.append(ByteBuffer(bytes: Fixtures.bytes(100, seed: 7)))
        try await appender.sync()
        try await appender.close()
        try await blobs.placeUpload(id, as: digest, size: 100)
        await assertTrue(try await store.markOrphanForDeletion(digest))
        await assertFalse(try await store.pinBlob(digest, size: 100, for: .generate()), "marked: an upload must wait")

        let finished = try await InterruptedDeletions.finish(metadata: store, blobs: blobs)
        XCTAssertEqual(finished, [digest])
        let size = try await blobs.size(of: digest)
        XCTAssertNil(size, "the bytes went")
        await assertFalse(try await store.hasBlobRow(digest))
        await assertTrue(try await store.pinBlob(digest, size: 100, for: .generate()), "and the blob can be pushed again")
        let again = try await InterruptedDeletions.finish(metadata: store, blobs: blobs)
        XCTAssertEqual(again, [], "nothing left to finish")
    }

    func testAPinnedRowWithoutBytesIsAnUploadInProgressNotAProblem() async throws {
        let store = try open("a")
        await assertTrue(try await store.pinBlob(digest, size: 100, for: .generate()))
        let report = try await verify(store)
        XCTAssertTrue(report.isClean)
        XCTAssertEqual(report.uploadsInProgress, [digest.description])
        XCTAssertEqual(report.missingBytes, [])
        let collected = try await collect(store)
        XCTAssertEqual(collected.blobs, [], "a live pin protects its blob")
    }

    func testARestartedInstanceReleasesThePinsOfItsKilledPredecessor() async throws {
        var killed: SQLiteMetadataStore? = try open("a")
        await assertTrue(try await killed?.pinBlob(digest, size: 100, for: .generate()) == true)
        killed = nil  // kill -9: the pin was never dropped and the bytes never placed

        let restarted = try open("a")
        XCTAssertEqual(restarted.releasedPinsAtStart, [digest])
        await assertFalse(try await restarted.isPinned(digest))
        let removed = try await InterruptedUploads.settle(restarted.releasedPinsAtStart, metadata: restarted, blobs: blobs)
        XCTAssertEqual(removed, [digest], "the row promised nothing and its bytes never came")
        let report = try await verify(restarted)
        XCTAssertTrue(report.isClean, "\(report)")
        XCTAssertEqual(report.checked, 0)
    }

    func testARowWhoseBytesArrivedStaysForCollection() async throws {
        var killed: SQLiteMetadataStore? = try open("a")
        let upload = UploadID.generate()
        await assertTrue(try await killed?.pinBlob(digest, size: 100, for: upload) == true)
        let appender = try await blobs.driver.appender(for: BlobStore.path(forUpload: upload), truncatingTo: 0)
        try await appender.append(ByteBuffer(bytes: Fixtures.bytes(100, seed: 7)))
        try await appender.close()
        try await blobs.placeUpload(upload, as: digest, size: 100)
        killed = nil  // killed after placing the bytes, before linking them

        let restarted = try open("a")
        let removed = try await InterruptedUploads.settle(restarted.releasedPinsAtStart, metadata: restarted, blobs: blobs)
        XCTAssertEqual(removed, [])
        let report = try await verify(restarted)
        XCTAssertTrue(report.isClean, "\(report)")
        let collected = try await collect(restarted)
        XCTAssertEqual(collected.blobs.map(\.digest), [digest], "unlinked and unpinned: collection takes it")
        let left = try await blobs.size(of: digest)
        XCTAssertNil(left)
    }

    func testAnInstanceReleasesOnlyItsOwnPins() async throws {
        let first = try open("a", lease: .milliseconds(600))
        await assertTrue(try await first.pinBlob(digest, size: 100, for: .generate()))
        let second = try open("b")
        XCTAssertEqual(second.releasedPinsAtStart, [], "b's start leaves a's pins alone")
        await assertTrue(try await second.isPinned(digest))
        let whileAlive = try await collect(second)
        XCTAssertEqual(whileAlive.blobs, [], "a's lease runs: its pin protects the blob")

        // a renews its lease while it lives…
        try await Task.sleep(for: .milliseconds(400))
        try await first.renewInstanceLease()
        try await Task.sleep(for: .milliseconds(400))
        await assertTrue(try await second.isPinned(digest), "a renewed lease keeps the pin")
        // …and once it stops renewing, its pins stop counting for everybody.
        try await Task.sleep(for: .milliseconds(400))
        await assertFalse(try await second.isPinned(digest))
        let afterLapse = try await collect(second)
        XCTAssertEqual(afterLapse.blobs.map(\.digest), [digest])
    }
}
