import XCTest

/// A test case with a fresh `TestRegistry` (filesystem driver) per test.
open class RegistryTestCase: XCTestCase {
    public var registry: TestRegistry!
    public var client: TestHTTPClient { registry.client }

    open override func setUp() async throws { registry = try await TestRegistry.start() }
    open override func tearDown() async throws { await registry?.stop() }
}
