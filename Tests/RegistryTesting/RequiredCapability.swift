import Foundation
import XCTest

/// For a test that needs what only some machines have (root, a tool): skipped on a
/// developer's machine without it, but a failure in CI (`CI=true`), where everything a
/// test needs is installed and the run is root: there a skip would hide a broken test.
///
/// ```swift
/// try requireCapability(getuid() == 0, "mounting a tmpfs needs root")
/// ```
public func requireCapability(_ available: Bool, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
    guard !available else { return }
    if ProcessInfo.processInfo.environment["CI"] == "true" {
        XCTFail("CI must run this test, but: \(what)", file: file, line: line)
    }
    throw XCTSkip(what)
}
