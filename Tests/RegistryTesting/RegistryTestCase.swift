import Foundation
import OCI
import XCTest

/// A test case with a fresh `TestRegistry` (filesystem driver) per test.
open class RegistryTestCase: XCTestCase {
    public var registry: TestRegistry!
    public var client: TestHTTPClient { registry.client }

    open override func setUp() async throws { registry = try await TestRegistry.start() }
    /// XCTest keeps every test case object until the run ends: the registry (its SQLite
    /// connections, event loops and sockets) is let go here, or a full run would hold
    /// thousands of descriptors.
    open override func tearDown() async throws {
        await registry?.stop()
        registry = nil
    }
}

extension RegistryTestCase {
    /// Restarts the registry with basic auth and a staff user, who pushes a small image
    /// to the private repository `p/q` as `v1`. - Returns: the staff's `Authorization` header.
    public func restartWithBasicAuthAndAPrivateImage() async throws -> (String, String) {
        await registry.stop()
        registry = try await TestRegistry.start(auth: .basic)
        try registry.createUser("staff", password: "staff-password", staff: true)
        let staff = ("Authorization", "Basic " + Data("staff:staff-password".utf8).base64EncodedString())
        let config = Fixtures.bytes(100, seed: 3), layer = Fixtures.bytes(300, seed: 4)
        for blob in [config, layer] {
            let pushed = try await client.send(.POST, "/v2/p/q/blobs/uploads/?digest=\(Fixtures.digest(blob))", headers: [staff], body: .bytes(blob))
            XCTAssertEqual(pushed.status, .created)
        }
        let put = try await client.send(.PUT, "/v2/p/q/manifests/v1", headers: [staff, ("Content-Type", MediaType.ociManifest)],
                                        body: .bytes(Fixtures.imageManifest(config: config, layers: [layer])))
        XCTAssertEqual(put.status, .created, put.text)
        return staff
    }
}
