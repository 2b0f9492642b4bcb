import Foundation
import NIOHTTP1
import OCI
import RegistryTesting
import XCTest

/// The daemon's documented settings, each through the real binary: the graceful stop
/// and its timeout, the upload purge's time-to-live, scheduled collections, sparse
/// indexes, and a collection refused while another runs.
final class DaemonSettingsTests: SpawnedDaemonTestCase {
    let authorization = [("Authorization", "Basic " + Data("admin:admin-password".utf8).base64EncodedString())]

    override class var directoryPrefix: String { "settings" }

    /// Starts registryd with `arguments` and a staff user `admin` (created on first start).
    func start(_ arguments: [String]) async throws {
        daemon = try SpawnedProcess(
            [DaemonTests.buildDirectory + "/registryd", "--listen", "127.0.0.1:\(port)", "--data-dir", directory + "/data"] + arguments,
            environment: ["PATH": "/usr/bin:/bin"], stderrPath: directory + "/registryd.log")
        for _ in 0..<200 {
            if let response = try? await TestHTTPClient(port: port).send(.GET, "/v2/"), response.status == .unauthorized {
                _ = try await registryctl(["user", "add", "admin", "--staff", "--password-stdin"], input: "admin-password\n")
                return
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        XCTFail("registryd did not start: \((try? String(contentsOfFile: directory + "/registryd.log", encoding: .utf8)) ?? "")")
        throw TestHTTPClientError.noResponse
    }

    func registryctl(_ arguments: [String], input: String? = nil) async throws -> (Int32, String) {
        try await tools.runStatus(
            [DaemonTests.buildDirectory + "/registryctl"] + arguments + ["--socket", directory + "/data/control.sock"], input: input)
    }

    func stop() async {
        daemon?.signal(SIGTERM)
        _ = await daemon?.waitForExit(seconds: 10)
    }

    // MARK: - Stopping

    /// A monolithic upload whose body arrives in `chunks` pieces of 10,000 bytes, 100 ms
    /// apart. - Returns: the request, and the digest of its body.
    private func slowUpload(chunks: Int) -> (Task<TestResponse, any Error>, String) {
        let chunk = Fixtures.bytes(10_000)
        let digest = Fixtures.digest(Array((0..<chunks).map { _ in chunk }.joined()))
        let (client, authorization) = (TestHTTPClient(port: port), authorization)
        let upload = Task {
            try await client.send(
                .POST, "/v2/slow/blobs/uploads/?digest=\(digest)", headers: authorization,
                body: .paced(chunk: chunk, count: chunks, pause: .milliseconds(100)))
        }
        return (upload, digest)
    }

    func testSIGTERMLetsARequestInFlightFinishWithinTheShutdownTimeout() async throws {
        try await start(["--shutdown-timeout", "10"])
        let client = TestHTTPClient(port: port)
        // A body that takes about two seconds to arrive, signalled half-way through.
        let (upload, _) = slowUpload(chunks: 20)
        try await Task.sleep(for: .milliseconds(700))
        let signalled = ContinuousClock.now
        daemon?.signal(SIGTERM)
        let finished = try await upload.value
        XCTAssertEqual(finished.status, .created, "the request in flight finishes: \(finished.text)")
        let exited = await daemon?.waitForExit(seconds: 10) ?? false
        XCTAssertTrue(exited)
        XCTAssertLessThan(ContinuousClock.now - signalled, .seconds(5), "and then the daemon exits, without waiting out the timeout")
        let refused = try? await client.send(.GET, "/v2/")
        XCTAssertNil(refused, "no new connections once stopped")
    }

    func testARequestLongerThanTheShutdownTimeoutIsCutAndTheDaemonExits() async throws {
        try await start(["--shutdown-timeout", "1"])
        let client = TestHTTPClient(port: port)
        let (upload, digest) = slowUpload(chunks: 100)
        try await Task.sleep(for: .milliseconds(500))
        let signalled = ContinuousClock.now
        daemon?.signal(SIGTERM)
        let exited = await daemon?.waitForExit(seconds: 10) ?? false
        XCTAssertTrue(exited)
        let took = ContinuousClock.now - signalled
        XCTAssertGreaterThanOrEqual(took, .milliseconds(900), "the request had its second")
        XCTAssertLessThan(took, .seconds(4), "and no more")
        if let answer = try? await upload.value {
            XCTAssertNotEqual(answer.status, .created, "a cut upload is not stored")
        }
        try await start([])
        let head = try await client.send(.HEAD, "/v2/slow/blobs/\(digest)", headers: authorization)
        XCTAssertEqual(head.status, .notFound)
    }

    // MARK: - Housekeeping

    func testIdleUploadsPastTheirTimeToLiveArePurgedOnStartAndThenHourly() async throws {
        try await start(["--upload-ttl", "1"])
        let client = TestHTTPClient(port: port)
        let started = try await client.send(.POST, "/v2/idle/blobs/uploads/", headers: authorization)
        let location = try XCTUnwrap(started.header("Location"))
        let patched = try await client.send(.PATCH, location, headers: authorization, body: .bytes(Fixtures.bytes(1000)))
        XCTAssertEqual(patched.status, .accepted)
        await stop()
        try await Task.sleep(for: .milliseconds(2100))
        try await start(["--upload-ttl", "1"])
        var status = 0
        for _ in 0..<100 {
            status = Int(try await client.send(.GET, location, headers: authorization).status.code)
            if status == 404 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTAssertEqual(status, 404, "the idle session was purged")
        let uploads = (try? FileManager.default.contentsOfDirectory(atPath: directory + "/data/storage/uploads")) ?? []
        XCTAssertEqual(uploads, [], "with its data")
    }

    func testScheduledCollectionsRunEveryIntervalWithTheirGrace() async throws {
        try await start(["--gc-interval", "1", "--gc-grace", "0"])
        let client = TestHTTPClient(port: port)
        let blob = Fixtures.bytes(1000, seed: 3)
        let pushed = try await client.send(
            .POST, "/v2/loose/blobs/uploads/?digest=\(Fixtures.digest(blob))", headers: authorization, body: .bytes(blob))
        XCTAssertEqual(pushed.status, .created)
        var status = 0
        for _ in 0..<100 {
            status = Int(try await client.send(.HEAD, "/v2/loose/blobs/\(Fixtures.digest(blob))", headers: authorization).status.code)
            if status == 404 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        XCTAssertEqual(status, 404, "a blob no manifest references goes with the next scheduled collection")
        let (_, report) = try await registryctl(["gc", "status", "--json"])
        XCTAssertTrue(report.contains(Fixtures.digest(blob)), report)
    }

    func testScheduledCollectionsKeepBlobsYoungerThanTheGrace() async throws {
        try await start(["--gc-interval", "1", "--gc-grace", "3600"])
        let client = TestHTTPClient(port: port)
        let blob = Fixtures.bytes(1000, seed: 4)
        let pushed = try await client.send(
            .POST, "/v2/loose/blobs/uploads/?digest=\(Fixtures.digest(blob))", headers: authorization, body: .bytes(blob))
        XCTAssertEqual(pushed.status, .created)
        // Wait for a scheduled run to have happened.
        var ran = false
        for _ in 0..<100 where !ran {
            ran = !(try await registryctl(["gc", "status", "--json"]).1.contains(#""last":null"#))
            if !ran { try await Task.sleep(for: .milliseconds(100)) }
        }
        XCTAssertTrue(ran, "a scheduled collection ran")
        let head = try await client.send(.HEAD, "/v2/loose/blobs/\(Fixtures.digest(blob))", headers: authorization)
        XCTAssertEqual(head.status, .ok, "within the grace period the blob stays")
    }

    func testASecondCollectionWhileOneRunsIsRefusedAsBusy() async throws {
        try await start([])
        let client = TestHTTPClient(port: port)
        // Enough loose blobs to keep a collection busy for a while.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for slice in 0..<8 {
                group.addTask { [authorization] in
                    for index in stride(from: slice, to: 1200, by: 8) {
                        let blob = Fixtures.bytes(100, seed: UInt64(20_000 + index))
                        _ = try await client.send(
                            .POST, "/v2/loose/blobs/uploads/?digest=\(Fixtures.digest(blob))", headers: authorization, body: .bytes(blob))
                    }
                }
            }
            try await group.waitForAll()
        }
        let (started, _) = try await registryctl(["gc", "run", "--grace", "0"])
        XCTAssertEqual(started, 0)
        let busy = try await tools.runCapturing([
            DaemonTests.buildDirectory + "/registryctl", "call", "gc.run", #"{"grace":0}"#, "--socket", directory + "/data/control.sock",
        ])
        XCTAssertEqual(busy.status, 2, busy.errors)
        XCTAssertTrue(busy.errors.contains("-32003") && busy.errors.contains("already running"), busy.errors)
    }

    // MARK: - Control socket

    func testTheAdminGroupOwnsTheControlSocket() async throws {
        // Who of the group may then call is ControlServerTests' (peer credentials, setpriv).
        let nogroup = try XCTUnwrap(getgrnam("nogroup")).pointee.gr_gid
        try await start(["--admin-group", "nogroup"])
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/data/control.sock")
        XCTAssertEqual(attributes[.posixPermissions] as? Int, 0o660)
        XCTAssertEqual((attributes[.groupOwnerAccountID] as? NSNumber)?.uint32Value, nogroup)
        await stop()
        // A group that does not exist stops the start with a clear message.
        let refused = try SpawnedProcess(
            [
                DaemonTests.buildDirectory + "/registryd", "--listen", "127.0.0.1:\(port)", "--data-dir", directory + "/data",
                "--admin-group", "no-such-group",
            ], environment: ["PATH": "/usr/bin:/bin"], stderrPath: directory + "/refused.log")
        let exited = await refused.waitForExit(seconds: 10)
        XCTAssertTrue(exited)
        let log = try String(contentsOfFile: directory + "/refused.log", encoding: .utf8)
        XCTAssertTrue(log.contains("no-such-group"), log)
    }

    // MARK: - Manifests

    func testSparseIndexesOnlyWithTheFlag() async throws {
        let child = Fixtures.imageManifest(config: [1], layers: [])
        let index = Fixtures.index(children: [(MediaType.ociManifest, child)])
        for (arguments, expected) in [([String](), HTTPResponseStatus.badRequest), (["--allow-sparse-indexes"], .created)] {
            try await start(arguments)
            let put = try await TestHTTPClient(port: port).send(
                .PUT, "/v2/mirror/manifests/partial", headers: authorization + [("Content-Type", MediaType.ociIndex)], body: .bytes(index))
            XCTAssertEqual(put.status, expected, "\(arguments): \(put.text)")
            if expected == .created {
                XCTAssertTrue(put.header("Warning")?.hasPrefix("299") ?? false, "accepted with a warning")
            } else {
                XCTAssertEqual(put.errorCodes, ["MANIFEST_BLOB_UNKNOWN"])
            }
            await stop()
        }
    }
}
