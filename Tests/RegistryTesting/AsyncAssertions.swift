import XCTest

// XCTest's assertions take synchronous autoclosures, and the metadata store is async:
// these are the same assertions for expressions that await. Failures are reported at
// the caller's line, as XCTest's own are.

/// Awaits `expression` and hands its value to `check`; a throw is a failure at the caller's line.
private func evaluate<T>(
    _ expression: () async throws -> T, _ message: String, file: StaticString, line: UInt, _ check: (T) -> Void
) async {
    do {
        check(try await expression())
    } catch {
        XCTFail("threw \(error) \(message)", file: file, line: line)
    }
}

public func assertEqual<T: Equatable>(
    _ expression: @autoclosure () async throws -> T, _ expected: @autoclosure () async throws -> T, _ message: String = "",
    file: StaticString = #filePath, line: UInt = #line
) async {
    await evaluate({ (try await expression(), try await expected()) }, message, file: file, line: line) {
        XCTAssertEqual($0.0, $0.1, message, file: file, line: line)
    }
}

public func assertTrue(
    _ expression: @autoclosure () async throws -> Bool, _ message: String = "", file: StaticString = #filePath, line: UInt = #line
) async {
    await assertEqual(try await expression(), true, message, file: file, line: line)
}

public func assertFalse(
    _ expression: @autoclosure () async throws -> Bool, _ message: String = "", file: StaticString = #filePath, line: UInt = #line
) async {
    await assertEqual(try await expression(), false, message, file: file, line: line)
}

public func assertNil<T>(
    _ expression: @autoclosure () async throws -> T?, _ message: String = "", file: StaticString = #filePath, line: UInt = #line
) async {
    await evaluate(expression, message, file: file, line: line) { XCTAssertNil($0, message, file: file, line: line) }
}

public func assertNotNil<T>(
    _ expression: @autoclosure () async throws -> T?, _ message: String = "", file: StaticString = #filePath, line: UInt = #line
) async {
    await evaluate(expression, message, file: file, line: line) { XCTAssertNotNil($0, message, file: file, line: line) }
}

public func assertNoThrow<T>(
    _ expression: @autoclosure () async throws -> T, _ message: String = "", file: StaticString = #filePath, line: UInt = #line
) async {
    await evaluate(expression, message, file: file, line: line) { _ in }
}

/// Fails unless `expression` throws; hands the error to `check`.
public func assertThrows<T>(
    _ expression: @autoclosure () async throws -> T, _ message: String = "", file: StaticString = #filePath, line: UInt = #line,
    _ check: (any Error) -> Void = { _ in }
) async {
    do {
        _ = try await expression()
        XCTFail("did not throw \(message)", file: file, line: line)
    } catch {
        check(error)
    }
}

/// The value of an optional that must be there, or a thrown failure (as `XCTUnwrap`).
public func unwrap<T>(
    _ expression: @autoclosure () async throws -> T?, _ message: String = "", file: StaticString = #filePath, line: UInt = #line
) async throws -> T {
    let value = try await expression()
    return try XCTUnwrap(value, message, file: file, line: line)
}
