import Foundation
import OCI
import RegistryTesting
import Storage
import XCTest

/// `CrashConsistencyTests` with the blobs in radosgw: the registryd kill -9 rounds
/// (inherited) over the S3 driver, and rounds where the object store itself is killed
/// with SIGKILL in the middle of uploads, commits and collections and started again.
/// While it is away clients get 503 with `Retry-After`; nothing half-written becomes
/// visible; uploads resume from what the registry acknowledged once it is back.
final class S3CrashConsistencyTests: CrashConsistencyTests {
    var bucket = ""

    override func storage() throws -> (arguments: [String], environment: [String: String]) {
        let settings = try onTheTestStore(TestObjectStore.settings)
        if bucket.isEmpty { bucket = "registryd-crash-\(UUID().uuidString.prefix(8).lowercased())" }
        return (
            ["--storage", "s3", "--s3-endpoint", settings["S3_ENDPOINT"] ?? "", "--s3-bucket", bucket, "--s3-part-size", "5"],
            ["AWS_ACCESS_KEY_ID": settings["AWS_ACCESS_KEY_ID"] ?? "", "AWS_SECRET_ACCESS_KEY": settings["AWS_SECRET_ACCESS_KEY"] ?? ""]
        )
    }

    override func storageDriver() async throws -> any StorageDriver {
        let settings = try TestObjectStore.settings()
        return try await S3Driver.prepared(
            S3Configuration(
                endpoint: settings["S3_ENDPOINT"] ?? "", bucket: bucket, region: settings["S3_REGION"] ?? "us-east-1",
                credentials: S3Credentials(
                    accessKeyID: settings["AWS_ACCESS_KEY_ID"] ?? "", secretAccessKey: settings["AWS_SECRET_ACCESS_KEY"] ?? "")))
    }

    /// Every object is a round trip to radosgw: fewer keep a run just as busy.
    override var looseBlobs: Int { 150 }

    /// `scripts/radosgw.sh gateway-kill|gateway-start` on the tests' store.
    func gateway(_ action: String) async throws {
        guard let directory = TestObjectStore.directory else { throw TestObjectStoreError.notConfigured }
        let script = ContainerTools.repositoryRoot + "/scripts/radosgw.sh"
        let (status, output) = try await tools.runStatus(["/bin/bash", script, "gateway-\(action)", directory])
        XCTAssertEqual(status, 0, "radosgw.sh gateway-\(action): \(output)")
    }

    func testObjectStoreKilledAndRestartedLosesNothingAndUploadsResume() async throws {
        var run = try await startRun("object store outages", defaultRounds: 3)
        let (rounds, authorization, shared, ledger) = (run.rounds, run.authorization, run.shared, run.ledger)
        var collections = 0

        for round in 0..<rounds {
            let (pushers, collector) = startWork(
                round: round, random: &run.random, shared: shared, authorization: authorization, ledger: ledger, ridingOutOutages: true)
            // Beside them, one upload watched step by step: a chunk acknowledged before the
            // outage, one refused during it, the rest sent once the store is back.
            let client = TestHTTPClient(port: port)
            let watched = Fixtures.bytes(300_000, seed: run.random.next())
            let started = try await client.send(.POST, "/v2/crash/watched/blobs/uploads/", headers: authorization)
            let location = try XCTUnwrap(started.header("Location"))
            let first = try await client.send(
                .PATCH, location, headers: authorization + [("Content-Range", "0-99999")], body: .bytes(Array(watched[..<100_000])))
            XCTAssertEqual(first.status, .accepted, first.text)
            try await Task.sleep(for: .milliseconds(Int.random(in: 300...1500, using: &run.random)))
            try await gateway("kill")
            // Longer than the driver's retries (five attempts, connects of up to 5 s): clients see the outage.
            let outage = ContinuousClock.now + .milliseconds(Int.random(in: 6000...9000, using: &run.random))
            let refused = try await client.send(
                .PATCH, location, headers: authorization + [("Content-Range", "100000-199999")],
                body: .bytes(Array(watched[100_000..<200_000])))
            XCTAssertEqual(refused.status, .serviceUnavailable, "round \(round): a chunk while the store is away: \(refused.text)")
            XCTAssertNotNil(refused.header("Retry-After"))
            try await Task.sleep(until: outage)
            let before = ledger.pushes
            try await gateway("start")
            let status = try await client.send(.GET, location, headers: authorization)
            XCTAssertEqual(
                status.header("Range"), "0-99999", "round \(round): the session holds what was acknowledged, nothing of the refused chunk")
            let rest = try await client.send(
                .PATCH, location, headers: authorization + [("Content-Range", "100000-299999")], body: .bytes(Array(watched[100_000...])))
            XCTAssertEqual(rest.status, .accepted, "round \(round): the upload resumes: \(rest.text)")
            let finished = try await client.send(.PUT, "\(location)?digest=\(Fixtures.digest(watched))", headers: authorization)
            XCTAssertEqual(finished.status, .created, finished.text)
            let pulled = try await client.send(.GET, "/v2/crash/watched/blobs/\(Fixtures.digest(watched))", headers: authorization)
            XCTAssertEqual(pulled.body, watched, "round \(round): the resumed upload holds exactly its bytes")
            // Back: every pusher gets images through again (their uploads resumed or redone).
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline, !(0..<4).allSatisfy({ ledger.pushes[$0, default: 0] > before[$0, default: 0] }) {
                try await Task.sleep(for: .milliseconds(100))
            }
            XCTAssertTrue(
                (0..<4).allSatisfy { ledger.pushes[$0, default: 0] > before[$0, default: 0] },
                "round \(round): every pusher pushes again once the store is back: \(before) → \(ledger.pushes)")
            for pusher in pushers { pusher.cancel() }
            for pusher in pushers { await pusher.value }
            collector.cancel()
            collections += await collector.value
            XCTAssertTrue(daemon?.isRunning ?? false, "registryd rides out the outage")
            try await checkEverythingAcknowledged(ledger, authorization: authorization, round: round)
        }
        print(
            "object store outages: \(ledger.images.count) images acknowledged and kept, \(ledger.unavailableCount) answers 503, \(collections) collections, \(rounds) outages"
        )
        XCTAssertGreaterThan(ledger.unavailableCount, 0, "clients saw the outages")
        XCTAssertGreaterThan(collections, 0)
    }
}
