import Foundation
import RegistryTesting
import XCTest

/// A registry that was stopped and let go keeps nothing open: its SQLite connections,
/// sockets and event loops close with it. (A full test run starts hundreds of them in
/// one process; when they leaked, the run held thousands of descriptors.)
final class StoppedRegistryTests: XCTestCase {
    private func openDescriptors() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
    }

    private func startUseAndStop() async throws {
        var registry: TestRegistry? = try await TestRegistry.start()
        let answer = try await registry!.client.send(.GET, "/v2/")
        XCTAssertEqual(answer.status, .ok)
        await registry!.stop()
        registry = nil
    }

    func testAStoppedRegistryHoldsNoDescriptors() async throws {
        // The first one may create what a process keeps once (thread pools and the like).
        try await startUseAndStop()
        let before = try openDescriptors()
        for _ in 0..<10 { try await startUseAndStop() }
        // Each registry holds at least its database, WAL, listener and event loop
        // descriptors; ten leaked ones would be dozens more.
        XCTAssertLessThanOrEqual(try openDescriptors(), before + 4)
    }
}
