import Foundation
import NIOCore
import OCI
import RegistryTesting
import Storage
import Synchronization
import XCTest

/// An upload survives a daemon restart: the session and its acknowledged bytes are
/// durable, and the running hash is rebuilt from storage.
final class UploadRestartTests: XCTestCase {
    func testChunkedUploadResumesAfterRestart() async throws {
        let blob = Fixtures.bytes(500_000)
        let first = try await TestRegistry.start()
        let location = try await first.client.startUpload("a")
        let patch = try await first.client.send(
            .PATCH, location, headers: [("Content-Range", "0-199999")], body: .bytes(Array(blob[0..<200_000])))
        XCTAssertEqual(patch.status, .accepted)
        await first.stop(keepingData: true)

        let second = try await TestRegistry.start(dataDirectory: first.dataDirectory)
        try await second.client.resumeUpload(location, of: blob, acknowledged: 200_000, in: "a")
        await second.stop()
    }

    func testBytesPastTheAcknowledgedOffsetAreDropped() async throws {
        // A crash mid-PATCH leaves bytes on disk that were never acknowledged; the next
        // chunk starts at the acknowledged offset and the digest still verifies.
        let blob = Fixtures.bytes(1000)
        let registry = try await TestRegistry.start()
        let location = try await registry.client.startUpload("a")
        _ = try await registry.client.send(.PATCH, location, body: .bytes(Array(blob[0..<500])))
        let id = try UploadID(parsing: String(location.split(separator: "/").last!))
        let appender = try await registry.blobs.driver.appender(for: .init(["uploads", id.value, "data"]), truncatingTo: nil)
        try await appender.append(.init(bytes: Fixtures.bytes(77, seed: 5)))
        try await appender.close()
        await registry.stop(keepingData: true)

        let restarted = try await TestRegistry.start(dataDirectory: registry.dataDirectory)
        let rest = try await restarted.client.send(
            .PATCH, location, headers: [("Content-Range", "500-999")], body: .bytes(Array(blob[500...])))
        XCTAssertEqual(rest.status, .accepted, rest.text)
        let put = try await restarted.client.send(.PUT, "\(location)?digest=\(Fixtures.digest(blob))")
        XCTAssertEqual(put.status, .created, put.text)
        await restarted.stop()
    }

    /// A memory driver whose deletes fail while `failingDeletes` is set: an object store
    /// that goes away between two calls of one request.
    final class FlakyDeletes: StorageDriver {
        let inner = MemoryDriver()
        let failingDeletes = Mutex(false)
        var name: String { "flaky" }
        func size(of path: StoragePath) async throws -> Int64? { try await inner.size(of: path) }
        func read(_ path: StoragePath, range: Range<Int64>?) async throws -> ByteChunks { try await inner.read(path, range: range) }
        func appender(for path: StoragePath, truncatingTo length: Int64?) async throws -> any StorageAppender {
            try await inner.appender(for: path, truncatingTo: length)
        }
        func move(from source: StoragePath, to destination: StoragePath) async throws {
            try await inner.move(from: source, to: destination)
        }
        func delete(_ path: StoragePath) async throws {
            if failingDeletes.withLock({ $0 }) { throw StorageError.unavailable("scripted outage") }
            try await inner.delete(path)
        }
        func list(under prefix: StoragePath) async throws -> [StoragePath] { try await inner.list(under: prefix) }
        func localFile(for path: StoragePath) -> String? { nil }
    }

    func testAFailedCleanupAfterTheBytesMovedStillCompletesTheUpload() async throws {
        // Found by killing radosgw under pushes: the bytes were in place, removing the
        // upload's directory failed, the client got 503, resumed, and got 500 for an
        // upload whose data had moved. Placing the bytes is the commit; the tidying after
        // it is the purge's job when it fails.
        let driver = FlakyDeletes()
        let registry = try await TestRegistry.start(driver: .custom(driver))
        let blob = Fixtures.bytes(1000)
        let location = try await registry.client.startUpload("a")
        let patch = try await registry.client.send(.PATCH, location, headers: [("Content-Range", "0-999")], body: .bytes(blob))
        XCTAssertEqual(patch.status, .accepted)
        driver.failingDeletes.withLock { $0 = true }
        let put = try await registry.client.send(.PUT, "\(location)?digest=\(Fixtures.digest(blob))")
        XCTAssertEqual(put.status, .created, put.text)
        let get = try await registry.client.send(.GET, "/v2/a/blobs/\(Fixtures.digest(blob))")
        XCTAssertEqual(get.status, .ok)
        XCTAssertEqual(Fixtures.digest(get.body), Fixtures.digest(blob))
        await registry.stop()
    }

    func testASessionWhoseBytesAreGoneEndsWithUploadUnknown() async throws {
        // A session resumed after a restart whose stored bytes vanished cannot go on: the
        // client is told to start again (404 BLOB_UPLOAD_UNKNOWN), not given a 500.
        let blob = Fixtures.bytes(1000)
        let first = try await TestRegistry.start()
        let location = try await first.client.startUpload("a")
        _ = try await first.client.send(.PATCH, location, headers: [("Content-Range", "0-499")], body: .bytes(Array(blob[..<500])))
        let id = String(location.split(separator: "/").last!)
        try await first.blobs.driver.delete(StoragePath(["uploads", id]))
        await first.stop(keepingData: true)

        let second = try await TestRegistry.start(dataDirectory: first.dataDirectory)
        let put = try await second.client.send(
            .PUT, "\(location)?digest=\(Fixtures.digest(blob))", headers: [("Content-Range", "500-999")], body: .bytes(Array(blob[500...])))
        XCTAssertEqual(put.status, .notFound, put.text)
        XCTAssertEqual(put.errorCodes, ["BLOB_UPLOAD_UNKNOWN"])
        let status = try await second.client.send(.GET, location)
        XCTAssertEqual(status.status, .notFound, "the session is over")
        await second.stop()
    }
}
