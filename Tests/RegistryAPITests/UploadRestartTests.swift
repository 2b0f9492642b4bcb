import NIOCore
import OCI
import RegistryTesting
import XCTest

/// An upload survives a daemon restart: the session and its acknowledged bytes are
/// durable, and the running hash is rebuilt from storage.
final class UploadRestartTests: XCTestCase {
    func testChunkedUploadResumesAfterRestart() async throws {
        let blob = Fixtures.bytes(500_000)
        let first = try await TestRegistry.start()
        let location = try await first.client.startUpload("a")
        let patch = try await first.client.send(.PATCH, location, headers: [("Content-Range", "0-199999")], body: .bytes(Array(blob[0..<200_000])))
        XCTAssertEqual(patch.status, .accepted)
        await first.stop(keepingData: true)

        let second = try await TestRegistry.start(dataDirectory: first.dataDirectory)
        let status = try await second.client.send(.GET, location)
        XCTAssertEqual(status.header("Range"), "0-199999")
        let rest = try await second.client.send(.PATCH, location, headers: [("Content-Range", "200000-499999")], body: .bytes(Array(blob[200_000...])))
        XCTAssertEqual(rest.status, .accepted, rest.text)
        let put = try await second.client.send(.PUT, "\(location)?digest=\(Fixtures.digest(blob))")
        XCTAssertEqual(put.status, .created, put.text)
        let get = try await second.client.send(.GET, "/v2/a/blobs/\(Fixtures.digest(blob))")
        XCTAssertEqual(get.body, blob)
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
        let rest = try await restarted.client.send(.PATCH, location, headers: [("Content-Range", "500-999")], body: .bytes(Array(blob[500...])))
        XCTAssertEqual(rest.status, .accepted, rest.text)
        let put = try await restarted.client.send(.PUT, "\(location)?digest=\(Fixtures.digest(blob))")
        XCTAssertEqual(put.status, .created, put.text)
        await restarted.stop()
    }
}
