import Foundation
import OCI
import XCTest

/// A test case with a fresh `TestRegistry` (filesystem driver) per test.
open class RegistryTestCase: XCTestCase {
    public var registry: TestRegistry!
    public var client: TestHTTPClient { registry.client }

    /// Whether the registry answers plain reads on the immediate path. Subclasses that
    /// say `false` run the same tests through NIO's parser alone: both paths must give
    /// the same answers.
    open class var immediateAnswers: Bool { true }

    /// Where the metadata lives. Subclasses that say `.postgres` run the same tests on
    /// PostgreSQL: both backends must give the same answers.
    open class var metadataKind: TestRegistry.MetadataKind { .sqlite }

    open override func setUp() async throws {
        registry = try await TestRegistry.start(immediateAnswers: Self.immediateAnswers, metadata: Self.metadataKind)
    }
    /// XCTest keeps every test case object until the run ends: the registry (its SQLite
    /// connections, event loops and sockets) is let go here, or a full run would hold
    /// thousands of descriptors.
    open override func tearDown() async throws {
        await registry?.stop()
        registry = nil
    }
}

extension RegistryTestCase {
    /// Pushes an image and reads it back repeatedly; with the immediate path off, the
    /// registry is never asked for an immediate answer.
    public func assertEveryReadTakesTheFullPath() async throws {
        XCTAssertFalse(Self.immediateAnswers)
        let config = Fixtures.bytes(100, seed: 5), layer = Fixtures.bytes(300, seed: 6)
        _ = try await client.pushBlob("full/path", config)
        let layerDigest = try await client.pushBlob("full/path", layer)
        let put = try await client.putManifest("full/path", "v1", Fixtures.imageManifest(config: config, layers: [layer]))
        XCTAssertEqual(put.status, .created, put.text)
        for _ in 0..<3 {
            let manifest = try await client.send(.GET, "/v2/full/path/manifests/v1", headers: [("Accept", MediaType.ociManifest)])
            XCTAssertEqual(manifest.status, .ok)
            let blob = try await client.send(.HEAD, "/v2/full/path/blobs/\(layerDigest)")
            XCTAssertEqual(blob.status, .ok)
        }
        XCTAssertEqual(registry.recorder.immediateAnswers, 0)
    }

    /// Restarts the registry with basic auth and a staff user, who pushes a small image
    /// to the private repository `p/q` as `v1`. - Returns: the staff's `Authorization` header.
    public func restartWithBasicAuthAndAPrivateImage() async throws -> (String, String) {
        await registry.stop()
        registry = try await TestRegistry.start(auth: .basic, immediateAnswers: Self.immediateAnswers, metadata: Self.metadataKind)
        try await registry.createUser("staff", password: "staff-password", staff: true)
        let staff = ("Authorization", "Basic " + Data("staff:staff-password".utf8).base64EncodedString())
        let config = Fixtures.bytes(100, seed: 3), layer = Fixtures.bytes(300, seed: 4)
        for blob in [config, layer] {
            let pushed = try await client.send(
                .POST, "/v2/p/q/blobs/uploads/?digest=\(Fixtures.digest(blob))", headers: [staff], body: .bytes(blob))
            XCTAssertEqual(pushed.status, .created)
        }
        let put = try await client.send(
            .PUT, "/v2/p/q/manifests/v1", headers: [staff, ("Content-Type", MediaType.ociManifest)],
            body: .bytes(Fixtures.imageManifest(config: config, layers: [layer])))
        XCTAssertEqual(put.status, .created, put.text)
        return staff
    }
}
