import NIOCore
import OCI
import Storage
import XCTest

/// Content addressing over a driver: verify, then move into place.
final class BlobStoreTests: XCTestCase {
    func chunks(_ bytes: [UInt8], size: Int) -> AsyncThrowingStream<ByteBuffer, any Error> {
        AsyncThrowingStream { continuation in
            for start in stride(from: 0, to: bytes.count, by: size) {
                continuation.yield(ByteBuffer(bytes: bytes[start..<min(start + size, bytes.count)]))
            }
            continuation.finish()
        }
    }

    func testUploadIsVerifiedThenStoredUnderItsDigest() async throws {
        let store = BlobStore(driver: MemoryDriver())
        let bytes = (0..<5_000_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        let id = UploadID.generate()
        let hasher = ContentHasher(algorithm: .sha256)
        let appended = try await store.appendToUpload(id, from: chunks(bytes, size: 300_000), hasher: hasher, startingAt: 0)
        XCTAssertEqual(appended, 5_000_000)
        let digest = Digest.of(bytes)
        let size = try await store.verifyUpload(id, hasher: hasher, expected: digest)
        XCTAssertEqual(size, 5_000_000)
        try await store.placeUpload(id, as: digest, size: size)
        let stored = try await store.size(of: digest)
        XCTAssertEqual(stored, 5_000_000)
        let leftovers = try await store.driver.list(under: BlobStore.uploadsPrefix)
        XCTAssertEqual(leftovers, [])
    }

    func testDigestMismatchStoresNothing() async throws {
        let store = BlobStore(driver: MemoryDriver())
        let id = UploadID.generate()
        let hasher = ContentHasher(algorithm: .sha256)
        _ = try await store.appendToUpload(id, from: chunks([1, 2, 3], size: 1), hasher: hasher, startingAt: 0)
        let wrong = Digest.of([3, 2, 1])
        do {
            _ = try await store.verifyUpload(id, hasher: hasher, expected: wrong)
            XCTFail("a wrong digest must not commit")
        } catch BlobStoreError.digestMismatch(let expected, let actual) {
            XCTAssertEqual(expected, wrong)
            XCTAssertEqual(actual, Digest.of([1, 2, 3]))
        }
        let stored = try await store.size(of: wrong)
        XCTAssertNil(stored)
    }

    func testBlobWrittenWithItsDigestAppearsOnlyWhenPlaced() async throws {
        let store = BlobStore(driver: MemoryDriver())
        let bytes = (0..<700_000).map { UInt8(truncatingIfNeeded: $0 &* 5) }
        let digest = Digest.of(bytes)
        let id = UploadID.generate()
        let hasher = ContentHasher(algorithm: .sha256)
        let write = try await store.writeBlob(digest, staging: id, from: chunks(bytes, size: 90_000), hasher: hasher)
        XCTAssertEqual(write.size, 700_000)
        let before = try await store.size(of: digest)
        XCTAssertNil(before, "nothing at the address before it is placed")
        let size = try await store.verifyUpload(id, hasher: hasher, expected: digest)
        XCTAssertEqual(size, 700_000)
        try await write.place()
        let placed = try await store.size(of: digest)
        XCTAssertEqual(placed, 700_000)
        let leftovers = try await store.driver.list(under: BlobStore.uploadsPrefix)
        XCTAssertEqual(leftovers, [])

        let other = Digest.of([1])
        let abandoned = try await store.writeBlob(
            other, staging: UploadID.generate(), from: chunks([2], size: 1), hasher: ContentHasher(algorithm: .sha256))
        await abandoned.abandon()
        let abandonedSize = try await store.size(of: other)
        XCTAssertNil(abandonedSize)
        let afterAbandon = try await store.driver.list(under: BlobStore.uploadsPrefix)
        XCTAssertEqual(afterAbandon, [])
    }

    func testABodyShorterThanABatchWaitsInMemoryAndIsWrittenWholeWhenPlaced() async throws {
        let root = NSTemporaryDirectory() + "/registryd-whole-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = BlobStore(driver: try FilesystemDriver(root: root))
        let bytes = (0..<3_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let digest = Digest.of(bytes)
        let id = UploadID.generate()
        let hasher = ContentHasher(algorithm: .sha256)
        let write = try await store.writeBlob(digest, staging: id, from: chunks(bytes, size: 1_000), hasher: hasher)
        XCTAssertEqual(write.size, 3_000)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/uploads/\(id.value)"), "nothing is written before the placement")
        let verified = try await store.verifyUpload(id, hasher: hasher, expected: digest)
        XCTAssertEqual(verified, 3_000, "the held-back body was hashed")
        try await write.place()
        let stored = Array(try await store.driver.read(BlobStore.path(for: digest), range: nil).collect(upTo: 1 << 20).readableBytesView)
        XCTAssertTrue(stored == bytes)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/uploads/\(id.value)"), "no upload directory is left")

        // Abandoned: nothing was ever written.
        let other = [UInt8](repeating: 5, count: 10)
        let abandoned = try await store.writeBlob(
            Digest.of(other), staging: UploadID.generate(), from: chunks(other, size: 10), hasher: ContentHasher(algorithm: .sha256))
        await abandoned.abandon()
        let abandonedSize = try await store.size(of: Digest.of(other))
        XCTAssertNil(abandonedSize)
        let leftovers = try await store.driver.list(under: BlobStore.uploadsPrefix)
        XCTAssertEqual(leftovers, [])
    }

    func testAStreamedBlobWriteLeavesNoUploadDirectoryPlacedOrAbandoned() async throws {
        let root = NSTemporaryDirectory() + "/registryd-streamed-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = BlobStore(driver: try FilesystemDriver(root: root))
        let bytes = (0..<400_000).map { UInt8(truncatingIfNeeded: $0 &* 11) }
        let digest = Digest.of(bytes)

        let placedID = UploadID.generate()
        let hasher = ContentHasher(algorithm: .sha256)
        let placed = try await store.writeBlob(digest, staging: placedID, from: chunks(bytes, size: 100_000), hasher: hasher)
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: root + "/uploads/\(placedID.value)/data"), "a long body is staged as it arrives")
        _ = try await store.verifyUpload(placedID, hasher: hasher, expected: digest)
        try await placed.place()
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/uploads/\(placedID.value)"), "placing removes the upload directory")

        let abandonedID = UploadID.generate()
        let abandoned = try await store.writeBlob(
            Digest.of([1]), staging: abandonedID, from: chunks(bytes, size: 100_000), hasher: ContentHasher(algorithm: .sha256))
        await abandoned.abandon()
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: root + "/uploads/\(abandonedID.value)"), "abandoning removes the upload directory")
        let stored = Array(try await store.driver.read(BlobStore.path(for: digest), range: nil).collect(upTo: 1 << 20).readableBytesView)
        XCTAssertTrue(stored == bytes, "the abandoned write left the placed blob alone")
    }

    func testBlobWriteWhoseBodyBreaksOffLeavesNothing() async throws {
        let store = BlobStore(driver: MemoryDriver())
        let digest = Digest.of([1, 2, 3])
        let broken = AsyncThrowingStream<ByteBuffer, any Error> { continuation in
            continuation.yield(ByteBuffer(bytes: [1, 2]))
            continuation.finish(throwing: CancellationError())
        }
        do {
            _ = try await store.writeBlob(digest, staging: UploadID.generate(), from: broken, hasher: ContentHasher(algorithm: .sha256))
            XCTFail("a broken body must fail the write")
        } catch is CancellationError {}
        let size = try await store.size(of: digest)
        XCTAssertNil(size)
        let leftovers = try await store.driver.list(under: BlobStore.uploadsPrefix)
        XCTAssertEqual(leftovers, [])
    }

    func testWhereAppendsRewriteTheObjectEachRequestIsAPieceJoinedOnceAtPlacement() async throws {
        let store = BlobStore(driver: MemoryDriver(appendRewritesObject: true))
        let mib = 1 << 20
        let bytes = (0..<(9 * mib)).map { UInt8(truncatingIfNeeded: $0 &* 11) }
        let id = UploadID.generate()
        let hasher = ContentHasher(algorithm: .sha256)
        var offset: Int64 = 0
        // Under 5 MiB the first object is rewritten (cheap); past it each request is a piece.
        for range in [0..<(2 * mib), (2 * mib)..<(6 * mib), (6 * mib)..<(8 * mib), (8 * mib)..<(9 * mib)] {
            offset += try await store.appendToUpload(
                id, from: chunks(Array(bytes[range]), size: 300_000), hasher: hasher, startingAt: offset)
            if offset == 6 * mib {
                // What a crashed request past the acknowledged size may leave: dropped by the next.
                let stale = try await store.driver.appender(for: StoragePath("uploads/\(id.value)/data-\(12 * mib)"), truncatingTo: 0)
                try await stale.append(ByteBuffer(bytes: [1, 2, 3]))
                try await stale.close()
            }
        }
        let listed = try await store.driver.list(under: BlobStore.uploadsPrefix).map { $0.segments.last! }.sorted()
        XCTAssertEqual(listed, ["data", "data-\(6 * mib)", "data-\(8 * mib)"], "bytes past 5 MiB are never rewritten")
        let first = try await store.driver.size(of: BlobStore.path(forUpload: id))
        XCTAssertEqual(first, Int64(6 * mib))
        let size = try await store.uploadSize(id)
        XCTAssertEqual(size, Int64(9 * mib))
        let rehashed = try await store.rehashUpload(id, algorithm: .sha256, length: Int64(7 * mib))
        XCTAssertEqual(rehashed.finalize(), Digest.of(Array(bytes[0..<(7 * mib)])))
        let digest = Digest.of(bytes)
        let verified = try await store.verifyUpload(id, hasher: hasher, expected: digest)
        try await store.placeUpload(id, as: digest, size: verified)
        let placed = try await store.content(of: digest, range: 0..<Int64(9 * mib), preferChunks: true)
        guard case .chunks(let placedChunks) = placed else { return XCTFail("memory blobs come as chunks") }
        let placedBytes = Array(try await placedChunks.collect(upTo: 16 * mib).readableBytesView)
        XCTAssertTrue(placedBytes == bytes, "the pieces joined in order")
        let leftovers = try await store.driver.list(under: BlobStore.uploadsPrefix)
        XCTAssertEqual(leftovers, [])
    }

    func testPiecesWithAGapAreNeverPlaced() async throws {
        let driver = MemoryDriver(appendRewritesObject: true)
        let store = BlobStore(driver: driver)
        let id = UploadID.generate()
        let hasher = ContentHasher(algorithm: .sha256)
        let first = Array(repeating: UInt8(1), count: 5 << 20)
        _ = try await store.appendToUpload(id, from: chunks(first, size: 1 << 20), hasher: hasher, startingAt: 0)
        _ = try await store.appendToUpload(id, from: chunks([4, 5], size: 2), hasher: hasher, startingAt: 5 << 20)
        _ = try await store.appendToUpload(id, from: chunks([6], size: 1), hasher: hasher, startingAt: (5 << 20) + 2)
        // A piece lost underneath: the rest must not become a blob.
        try await driver.delete(StoragePath("uploads/\(id.value)/data-\(5 << 20)"))
        let digest = Digest.of(first + [4, 5, 6])
        do {
            try await store.placeUpload(id, as: digest, size: (5 << 20) + 3)
            XCTFail("an upload missing a piece must not be placed")
        } catch StorageError.io {}
        let stored = try await store.size(of: digest)
        XCTAssertNil(stored)
    }

    func testRehashingFromStorageMatchesTheRunningHash() async throws {
        let store = BlobStore(driver: MemoryDriver())
        let id = UploadID.generate()
        let bytes = Array(repeating: UInt8(42), count: 100_000)
        let hasher = ContentHasher(algorithm: .sha512)
        _ = try await store.appendToUpload(id, from: chunks(bytes, size: 7000), hasher: hasher, startingAt: 0)
        let rehashed = try await store.rehashUpload(id, algorithm: .sha512, length: 50_000)
        XCTAssertEqual(rehashed.finalize(), Digest.of(Array(bytes[0..<50_000]), algorithm: .sha512))
        XCTAssertEqual(hasher.finalize(), Digest.of(bytes, algorithm: .sha512))
    }

    func testBlobPathsAreContentAddressed() throws {
        let digest = Digest.of([1])
        XCTAssertEqual(BlobStore.path(for: digest).description, "blobs/sha256/\(digest.encoded.prefix(2))/\(digest.encoded)/data")
    }
}
