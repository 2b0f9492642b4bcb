import Foundation
import Metadata
import RegistryTesting
import XCTest

/// The database goes away under a running registry, and comes back: requests that need
/// it get 503 with Retry-After (never a 500, never a hang), and everything works again
/// once it is back. A PostgreSQL server of the test's own (`scripts/postgres.sh`), so
/// stopping it disturbs no other test.
final class PostgresOutageTests: XCTestCase {
    func testADatabaseOutageIsA503WithRetryAfterAndTheRegistryRecovers() async throws {
        let directory = try makeTemporaryDirectory(prefix: "registryd-outage")
        var stopped = false
        defer {
            if !stopped {
                _ = try? SpawnedProcess(["/bin/bash", Self.script, "stop", directory], environment: [:], stderrPath: "/dev/null")
            }
        }
        try await Self.postgres("start", directory)
        var values: [String: String] = [:]
        for line in try String(contentsOfFile: directory + "/postgres.env", encoding: .utf8).split(separator: "\n") {
            let pair = line.split(separator: "=", maxSplits: 1).map(String.init)
            if pair.count == 2 { values[pair[0]] = pair[1] }
        }
        let location = try PostgresLocation(parsing: try XCTUnwrap(values["POSTGRES_URL"]) + "?sslmode=disable")
            .withPassword(configured: values["PGPASSWORD"], environment: [:])
        let registry = try await TestRegistry.start(metadata: .postgresDatabase(location))

        let config = Fixtures.json(["outage": true])
        let layer = Fixtures.bytes(2000, seed: 9)
        for blob in [config, layer] { try await registry.client.pushBlob("team/app", blob) }
        let manifest = Fixtures.imageManifest(config: config, layers: [layer])
        await assertEqual(try await registry.client.putManifest("team/app", "v1", manifest).status, .created)

        try await Self.postgres("pause", directory)
        // Within a few seconds every request that needs the database is a 503 (a cached
        // answer may be served until the refresh interval has passed).
        var answered: TestResponse?
        let started = ContinuousClock.now
        while ContinuousClock.now - started < .seconds(10) {
            let response = try await registry.client.send(.GET, "/v2/team/app/tags/list")
            if response.status != .ok {
                answered = response
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let outage = try XCTUnwrap(answered, "the outage was noticed")
        XCTAssertEqual(outage.status, .serviceUnavailable, outage.text)
        XCTAssertEqual(outage.header("Retry-After"), "5")
        let push = try await registry.client.send(.POST, "/v2/team/app/blobs/uploads/")
        XCTAssertEqual(push.status, .serviceUnavailable, "writes too: \(push.text)")

        try await Self.postgres("resume", directory)
        var recovered = false
        let resumed = ContinuousClock.now
        while !recovered, ContinuousClock.now - resumed < .seconds(15) {
            recovered = try await registry.client.send(.GET, "/v2/team/app/tags/list").status == .ok
            if !recovered { try await Task.sleep(for: .milliseconds(100)) }
        }
        XCTAssertTrue(recovered, "the registry works again once the database is back")
        let again = try await registry.client.send(.GET, "/v2/team/app/manifests/v1", headers: [("Accept", "*/*")])
        XCTAssertEqual(again.body, manifest)
        try await registry.client.pushBlob("team/app", Fixtures.bytes(3000, seed: 10))
        await registry.stop()
        try await Self.postgres("stop", directory)
        stopped = true
    }

    static let script = ContainerTools.repositoryRoot + "/scripts/postgres.sh"

    /// Runs `scripts/postgres.sh COMMAND DIR`. Spawned, not `Process`: the server it starts
    /// would inherit the descriptor by which Foundation notices the script's exit.
    static func postgres(_ command: String, _ directory: String) async throws {
        let log = directory + "-\(command).log"
        let process = try SpawnedProcess(
            ["/bin/bash", script, command, directory], environment: ProcessInfo.processInfo.environment, stderrPath: log)
        let exited = await process.waitForExit(seconds: 120)
        let errors = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: log)
        guard exited, process.terminationStatus == 0 else {
            throw ClusterError.failed("postgres.sh \(command) failed (\(String(describing: process.terminationStatus))): \(errors)")
        }
    }
}
