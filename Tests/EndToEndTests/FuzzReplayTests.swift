import Foundation
import XCTest

/// Every stored fuzzing input (the seed corpora and the regressions, inputs that once
/// crashed a parser) replayed through its target by the ordinary build of
/// `registryd-fuzz`, so a parser that breaks on one of them fails the test suite too.
final class FuzzReplayTests: XCTestCase {
    func testEveryStoredFuzzingInputPassesItsTarget() async throws {
        let binary = DaemonTests.buildDirectory + "/registryd-fuzz"
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            XCTFail("build the binaries first (swift build)")
            return
        }
        let tools = try ContainerTools(registry: "127.0.0.1")
        defer { tools.cleanUp() }
        let root = ContainerTools.repositoryRoot
        let (status, output) = try await tools.runStatus([binary, root + "/Fuzz/Corpus", root + "/Fuzz/Regressions"])
        XCTAssertEqual(status, 0, output)
        let count = Int(output.split(separator: " ").dropFirst().first ?? "") ?? 0
        XCTAssertGreaterThan(count, 50, output)
    }
}
