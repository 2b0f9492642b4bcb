import Foundation
import NIOCore
import NIOHTTP1
import OCI
import RegistryTesting
import Storage
import Synchronization
import XCTest

/// kill -9 at a random moment: the real `registryd` binary with concurrent pushers using
/// every upload pattern, layers shared between them (the dedupe path), deletes of their
/// own older images and back-to-back zero-grace collections, killed with SIGKILL and
/// started again, several rounds over one data directory. After every restart each
/// manifest the registry acknowledged (201) and did not delete (202) is served
/// byte-exact by its tag, every blob it references is served with the right digest, and
/// `registryctl storage verify` is clean.
///
/// Seeded: the seed is printed, and `REGISTRYD_CRASH_SEED=N` replays a run.
/// `REGISTRYD_CRASH_ROUNDS=N` runs longer (default 4 rounds, well under a minute).
/// `S3CrashConsistencyTests` runs the same over radosgw, and kills radosgw itself.
class CrashConsistencyTests: SpawnedDaemonTestCase {
    static let registryd = DaemonTests.buildDirectory + "/registryd"
    static let registryctl = DaemonTests.buildDirectory + "/registryctl"
    let password = "crash-password"

    override class var directoryPrefix: String { "crash" }

    /// A manifest the registry answered 201 for.
    struct Acknowledged: Sendable {
        let repository: String
        let tag: String
        let digest: String
        let manifest: [UInt8]
        let blobs: [String]
    }

    /// What the clients were told, shared by the pushers.
    final class Ledger: Sendable {
        private let state = Mutex<(acknowledged: [String: Acknowledged], deleted: Int, pushes: [Int: Int], unavailable: Int)>(
            ([:], 0, [:], 0))

        func acknowledge(_ image: Acknowledged, by pusher: Int) {
            state.withLock {
                $0.acknowledged[image.digest] = image
                $0.pushes[pusher, default: 0] += 1
            }
        }
        /// Images each pusher had acknowledged so far.
        var pushes: [Int: Int] { state.withLock { $0.pushes } }
        /// 503 answers seen (each with `Retry-After`).
        func noteUnavailable() { state.withLock { $0.unavailable += 1 } }
        var unavailableCount: Int { state.withLock { $0.unavailable } }
        /// A 202 for a delete, or a delete whose answer never came (it may have happened): not checked any more.
        func forget(_ digest: String, deleted: Bool) {
            state.withLock {
                $0.acknowledged[digest] = nil
                if deleted { $0.deleted += 1 }
            }
        }
        var images: [Acknowledged] { state.withLock { Array($0.acknowledged.values) } }
        var deletedCount: Int { state.withLock { $0.deleted } }
    }

    /// SplitMix64: small, seedable, the same sequence on every machine.
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// The storage the daemon runs on: flags and environment (the filesystem here).
    func storage() throws -> (arguments: [String], environment: [String: String]) { ([], [:]) }

    /// The daemon's storage as the test reaches it directly (to plant orphaned bytes and
    /// to see what is left).
    func storageDriver() async throws -> any StorageDriver { try FilesystemDriver(root: directory + "/data/storage") }

    /// Loose blobs and orphans in the collection-and-repair test: enough to keep each run
    /// busy for a while on this storage.
    var looseBlobs: Int { 1500 }

    func startDaemon() async throws {
        let (arguments, environment) = try storage()
        daemon = try SpawnedProcess(
            [Self.registryd, "--listen", "127.0.0.1:\(port)", "--data-dir", directory + "/data", "--log-level", "warning"] + arguments,
            environment: ["PATH": "/usr/bin:/bin"].merging(environment) { $1 }, stderrPath: directory + "/registryd.log")
        for _ in 0..<200 {
            if let response = try? await TestHTTPClient(port: port).send(.GET, "/v2/"), response.status == .unauthorized { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        XCTFail("registryd did not start: \((try? String(contentsOfFile: directory + "/registryd.log", encoding: .utf8)) ?? "")")
        throw TestHTTPClientError.noResponse
    }

    func registryctl(_ arguments: [String], input: String? = nil) async throws -> (Int32, String) {
        try await tools.runStatus([Self.registryctl] + arguments + ["--socket", directory + "/data/control.sock"], input: input)
    }

    /// A seeded run: the seed printed, the daemon started with a staff pusher, three
    /// layers the images share, an empty ledger.
    struct Run {
        var random: SeededGenerator
        let rounds: Int
        let authorization: [(String, String)]
        let shared: [[UInt8]]
        let ledger = Ledger()
    }

    func startRun(_ name: String, defaultRounds: Int) async throws -> Run {
        let environment = ProcessInfo.processInfo.environment
        let seed = UInt64(environment["REGISTRYD_CRASH_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64(Int64.max))
        let rounds = Int(environment["REGISTRYD_CRASH_ROUNDS"] ?? "") ?? defaultRounds
        print("\(name): seed \(seed) (REGISTRYD_CRASH_SEED=\(seed) replays it), \(rounds) rounds")
        try await startDaemon()
        let (added, _) = try await registryctl(["user", "add", "pusher", "--staff", "--password-stdin"], input: password + "\n")
        XCTAssertEqual(added, 0)
        return Run(
            random: SeededGenerator(state: seed), rounds: rounds,
            authorization: [("Authorization", "Basic " + Data("pusher:\(password)".utf8).base64EncodedString())],
            shared: (0..<3).map { Fixtures.bytes(150_000, seed: seed &+ UInt64($0)) })
    }

    func testKilledAtRandomMomentsLosesNothingAcknowledged() async throws {
        var run = try await startRun("crash consistency", defaultRounds: 4)
        let (rounds, authorization, shared, ledger) = (run.rounds, run.authorization, run.shared, run.ledger)
        var collections = 0

        for round in 0..<rounds {
            let (pushers, collector) = startWork(
                round: round, random: &run.random, shared: shared, authorization: authorization, ledger: ledger, ridingOutOutages: false)
            // Let the work get going, then kill at a moment nobody chose.
            try await Task.sleep(for: .milliseconds(Int.random(in: 400...2500, using: &run.random)))
            daemon?.signal(SIGKILL)
            let killed = await daemon?.waitForExit(seconds: 10) ?? false
            XCTAssertTrue(killed)
            for pusher in pushers { await pusher.value }
            collector.cancel()
            collections += await collector.value

            try await startDaemon()
            try await checkEverythingAcknowledged(ledger, authorization: authorization, round: round)
        }
        print(
            "crash consistency: \(ledger.images.count) images acknowledged and kept, \(ledger.deletedCount) deleted, \(collections) collections, \(rounds) kills"
        )
        XCTAssertGreaterThan(ledger.images.count, 0, "pushes got through between the kills")
        XCTAssertGreaterThan(collections, 0, "collections ran beside the pushes")
    }

    /// kill -9 in the middle of a garbage collection, then in the middle of `storage
    /// verify --repair`: after the restart the images stay whole, the blobs a killed run
    /// had marked can be pushed again at once, and the next run finishes the job.
    func testKilledDuringACollectionOrARepairTheNextRunFinishesTheJob() async throws {
        try await startDaemon()
        _ = try await registryctl(["user", "add", "pusher", "--staff", "--password-stdin"], input: password + "\n")
        let authorization = [("Authorization", "Basic " + Data("pusher:\(password)".utf8).base64EncodedString())]
        let client = TestHTTPClient(port: port)
        var kept: [Acknowledged] = []
        for index in 0..<4 {
            let config = Fixtures.json(["kept": index])
            let layer = Fixtures.bytes(50_000, seed: UInt64(100 + index))
            for blob in [config, layer] {
                let pushed = try await client.send(
                    .POST, "/v2/kept/image/blobs/uploads/?digest=\(Fixtures.digest(blob))", headers: authorization, body: .bytes(blob))
                XCTAssertEqual(pushed.status, .created)
            }
            let manifest = Fixtures.imageManifest(config: config, layers: [layer])
            let put = try await client.send(
                .PUT, "/v2/kept/image/manifests/v\(index)", headers: authorization + [("Content-Type", MediaType.ociManifest)],
                body: .bytes(manifest))
            XCTAssertEqual(put.status, .created)
            kept.append(
                Acknowledged(
                    repository: "kept/image", tag: "v\(index)", digest: Fixtures.digest(manifest), manifest: manifest,
                    blobs: [config, layer].map { Fixtures.digest($0) }))
        }
        let ledger = Ledger()
        for image in kept { ledger.acknowledge(image, by: 0) }

        // Garbage: blobs no manifest references, enough to keep a collection busy.
        func pushGarbage(_ blobs: [[UInt8]]) async throws {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for slice in 0..<8 {
                    group.addTask {
                        for blob in blobs[(slice * blobs.count / 8)..<((slice + 1) * blobs.count / 8)] {
                            let pushed = try await client.send(
                                .POST, "/v2/garbage/blobs/uploads/?digest=\(Fixtures.digest(blob))", headers: authorization,
                                body: .bytes(blob))
                            XCTAssertEqual(pushed.status, .created)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let garbage = (0..<looseBlobs).map { Fixtures.bytes(200, seed: UInt64(10_000 + $0)) }
        try await pushGarbage(garbage)

        // A collection, killed once it is under way.
        let collect = ["gc", "run", "--grace", "0", "--delete-untagged", "--wait"]
        func phaseOnceStarted() async throws -> String {
            var phase = "idle"
            for _ in 0..<400 where phase == "idle" {
                phase =
                    (try? JSONDecoder().decode(GCStatus.self, from: Data(try await registryctl(["gc", "status", "--json"]).1.utf8)).phase)
                    ?? "idle"
            }
            return phase
        }
        var collection = launch(collect)
        var phase = try await phaseOnceStarted()
        for retry in 1..<3 where phase == "idle" {
            // It ended between two polls (seen once in CI, where each poll is a process):
            // nothing is left to kill, so more garbage and another collection.
            let status = await collection.value
            print("collection \(retry) ended (status \(status)) before a poll saw it run: another, on fresh garbage")
            try await pushGarbage((0..<looseBlobs).map { Fixtures.bytes(200, seed: UInt64(20_000 * (retry + 1) + $0)) })
            collection = launch(collect)
            phase = try await phaseOnceStarted()
        }
        XCTAssertNotEqual(phase, "idle", "the collection started")
        try await Task.sleep(for: .milliseconds(Int.random(in: 0...60)))
        daemon?.signal(SIGKILL)
        _ = await daemon?.waitForExit(seconds: 10)
        let collected = await collection.value
        XCTAssertNotEqual(collected, 0, "the kill landed before the collection finished")
        try await startDaemon()
        try await checkEverythingAcknowledged(ledger, authorization: authorization, round: 0)
        // Whatever the killed run had marked for deletion can be pushed again now, not
        // only after the next collection.
        for blob in garbage.prefix(40) {
            let again = try await client.send(
                .POST, "/v2/again/blobs/uploads/?digest=\(Fixtures.digest(blob))", headers: authorization, body: .bytes(blob))
            XCTAssertEqual(again.status, .created, "\(Fixtures.digest(blob)) after the killed collection: \(again.text)")
        }
        let (finished, report) = try await registryctl(["gc", "run", "--grace", "0", "--wait"])
        XCTAssertEqual(finished, 0, report)
        for blob in garbage.dropFirst(40).prefix(40) {
            let head = try await client.send(.HEAD, "/v2/garbage/blobs/\(Fixtures.digest(blob))", headers: authorization)
            XCTAssertEqual(head.status, .notFound, "the next collection finished the job")
        }
        try await checkEverythingAcknowledged(ledger, authorization: authorization, round: 1)

        // Bytes without rows, and a repair killed half-way through removing them.
        let orphans = (0..<looseBlobs).map { Fixtures.bytes(300, seed: UInt64(50_000 + $0)) }
        let driver = try await storageDriver()
        for blob in orphans {
            let appender = try await driver.appender(
                for: BlobStore.path(for: try Digest(parsing: Fixtures.digest(blob))), truncatingTo: nil)
            try await appender.append(ByteBuffer(bytes: blob))
            try await appender.sync()
            try await appender.close()
        }
        let repair = launch(["storage", "verify", "--repair"])
        try await Task.sleep(for: .milliseconds(Int.random(in: 50...250)))
        daemon?.signal(SIGKILL)
        _ = await daemon?.waitForExit(seconds: 10)
        let repaired = await repair.value
        XCTAssertNotEqual(repaired, 3, "the kill landed before the repair finished")
        try await startDaemon()
        // Not verified yet: the orphans the killed repair did not reach are still there.
        try await checkEverythingAcknowledged(ledger, authorization: authorization, round: 2, verifying: false)
        for blob in orphans.prefix(40) {
            let again = try await client.send(
                .POST, "/v2/again/blobs/uploads/?digest=\(Fixtures.digest(blob))", headers: authorization, body: .bytes(blob))
            XCTAssertEqual(again.status, .created, "after the killed repair: \(again.text)")
        }
        _ = try await registryctl(["storage", "verify", "--repair"])
        let (verified, output) = try await registryctl(["storage", "verify"])
        XCTAssertEqual(verified, 0, output)
        // blobs/<algorithm>/<xx>/<hex>/data
        let left = Set(try await driver.list(under: StoragePath("blobs")).map { "\($0.segments[1]):\($0.segments[3])" })
        // The garbage pushed again went in the collection after; the orphans pushed again stay.
        let expected = Set(kept.flatMap(\.blobs) + orphans.prefix(40).map { Fixtures.digest($0) })
        XCTAssertEqual(left, expected, "the kept images' blobs and the orphans pushed again, nothing else")
    }

    struct GCStatus: Decodable { let phase: String }

    /// Runs `registryctl ARGUMENTS` in the background. - Returns: its exit status (-1: did not run).
    func launch(_ arguments: [String]) -> Task<Int32, Never> {
        let tools: ContainerTools = self.tools
        let command = [Self.registryctl] + arguments + ["--socket", directory + "/data/control.sock"]
        return Task {
            guard let (status, _) = try? await tools.runStatus(command) else { return -1 }
            return status
        }
    }

    /// Starts four pushers and a collector running zero-grace collections back to back.
    /// Riding out outages, both keep going through 503s (the object store is away) until
    /// cancelled; otherwise they end at the first request without an answer.
    func startWork(
        round: Int, random: inout SeededGenerator, shared: [[UInt8]], authorization: [(String, String)], ledger: Ledger,
        ridingOutOutages: Bool
    ) -> (pushers: [Task<Void, Never>], collector: Task<Int, Never>) {
        let client = TestHTTPClient(port: port)
        let pushers = (0..<4).map { pusher in
            let pusherSeed = random.next()
            return Task {
                await Self.push(
                    as: pusher, round: round, seed: pusherSeed, shared: shared, client: client, authorization: authorization,
                    ledger: ledger, ridingOutOutages: ridingOutOutages)
            }
        }
        let collect = [Self.registryctl, "gc", "run", "--grace", "0", "--wait", "--socket", directory + "/data/control.sock"]
        let tools: ContainerTools = self.tools
        let collector = Task {
            var runs = 0
            while !Task.isCancelled {
                guard let (status, _) = try? await tools.runStatus(collect) else { break }
                if status == 0 {
                    runs += 1
                } else if !ridingOutOutages {
                    break
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return runs
        }
        return (pushers, collector)
    }

    func checkEverythingAcknowledged(_ ledger: Ledger, authorization: [(String, String)], round: Int, verifying: Bool = true) async throws {
        let client = TestHTTPClient(port: port)
        for image in ledger.images {
            let manifest = try await client.send(
                .GET, "/v2/\(image.repository)/manifests/\(image.tag)", headers: authorization + [("Accept", "*/*")])
            XCTAssertEqual(manifest.status, .ok, "round \(round): \(image.repository):\(image.tag) was acknowledged")
            XCTAssertEqual(manifest.body, image.manifest, "round \(round): byte-exact")
            for digest in image.blobs {
                let blob = try await client.send(.GET, "/v2/\(image.repository)/blobs/\(digest)", headers: authorization)
                XCTAssertEqual(blob.status, .ok, "round \(round): \(image.repository) \(digest)")
                XCTAssertEqual(Fixtures.digest(blob.body), digest, "round \(round): the bytes verify")
            }
        }
        guard verifying else { return }
        let (status, output) = try await registryctl(["storage", "verify"])
        XCTAssertEqual(status, 0, "round \(round): storage verify after kill -9:\n\(output)")
    }

    // MARK: - A pusher

    enum UploadPattern: CaseIterable {
        /// `POST ?digest=` with the whole blob.
        case monolithic
        /// `POST`, then `PUT ?digest=` with the whole blob.
        case postThenPut
        /// `POST`, one streamed `PATCH` (chunked, no Content-Range, as podman and docker), `PUT ?digest=`.
        case onePatch
        /// `POST`, `PATCH`es with `Content-Range`, the last chunk in the `PUT`.
        case chunkedWithLastInPut
    }

    /// Pushes images until a request fails (the daemon was killed), deleting an older
    /// image of its own now and then; records what was acknowledged.
    static func push(
        as pusher: Int, round: Int, seed: UInt64, shared: [[UInt8]], client: TestHTTPClient,
        authorization: [(String, String)], ledger: Ledger, ridingOutOutages: Bool
    ) async {
        var random = SeededGenerator(state: seed)
        let repository = "crash/pusher\(pusher)"
        var mine: [String] = []
        for image in 0... {
            if Task.isCancelled { return }
            do {
                let config = Fixtures.json(["pusher": pusher, "round": round, "image": image, "nonce": Int(random.next() >> 1)])
                let own = Fixtures.bytes(Int.random(in: 1000...400_000, using: &random), seed: random.next())
                let layers = [shared[Int(random.next() % UInt64(shared.count))], own]
                let manifest = Fixtures.imageManifest(config: config, layers: layers)
                let tag = "r\(round)-i\(image)"
                var acknowledged = false
                // A zero-grace collection may unlink fresh layers before the manifest names
                // them (MANIFEST_BLOB_UNKNOWN): push them again, a few times. While the
                // object store is away, a blob is pushed again once it is back.
                var unknownBlobs = 0
                while !acknowledged && unknownBlobs < 5 && !Task.isCancelled {
                    do {
                        for blob in [config] + layers {
                            let pattern = UploadPattern.allCases.randomElement(using: &random)!
                            try await pushBlob(
                                blob, to: repository, pattern, client: client, authorization: authorization, random: &random,
                                ridingOutOutages: ridingOutOutages, ledger: ledger)
                        }
                    } catch is Unavailable where ridingOutOutages {
                        try? await Task.sleep(for: .milliseconds(100))
                        continue
                    }
                    let put = try await client.send(
                        .PUT, "/v2/\(repository)/manifests/\(tag)",
                        headers: authorization + [("Content-Type", MediaType.ociManifest)], body: .bytes(manifest))
                    if put.status == .created {
                        acknowledged = true
                        let digest = Fixtures.digest(manifest)
                        ledger.acknowledge(
                            Acknowledged(
                                repository: repository, tag: tag, digest: digest, manifest: manifest,
                                blobs: ([config] + layers).map { Fixtures.digest($0) }), by: pusher)
                        mine.append(digest)
                    } else if put.errorCodes == ["MANIFEST_BLOB_UNKNOWN"] {
                        unknownBlobs += 1
                    } else {
                        XCTFail("manifest PUT: \(put.status) \(put.text)")
                        return
                    }
                }
                if image % 3 == 2, mine.count > 1 {
                    let victim = mine.remove(at: Int(random.next() % UInt64(mine.count - 1)))
                    // Forgotten before the request: if the answer never comes, it may have happened.
                    ledger.forget(victim, deleted: false)
                    let deleted = try await client.send(.DELETE, "/v2/\(repository)/manifests/\(victim)", headers: authorization)
                    XCTAssertEqual(deleted.status, .accepted)
                    ledger.forget(victim, deleted: true)
                }
            } catch let error as StepError {
                XCTFail("pusher \(pusher): \(error)")  // an answer, and a wrong one
                return
            } catch let error as Unavailable {
                XCTFail("pusher \(pusher): \(error) with the object store up")
                return
            } catch {
                return  // no answer: the daemon is gone
            }
        }
    }

    /// A 503 (the object store is away); it must say when to retry.
    struct Unavailable: Error, CustomStringConvertible {
        let step: String
        var description: String { "\(step): 503" }
    }

    static func pushBlob(
        _ blob: [UInt8], to repository: String, _ pattern: UploadPattern, client: TestHTTPClient,
        authorization: [(String, String)], random: inout SeededGenerator, ridingOutOutages: Bool, ledger: Ledger
    ) async throws {
        let digest = Fixtures.digest(blob)
        func expect(_ status: HTTPResponseStatus, _ response: TestResponse, _ step: String) throws {
            if response.status == .serviceUnavailable {
                XCTAssertNotNil(response.header("Retry-After"), "\(step): a 503 says when to retry")
                ledger.noteUnavailable()
                throw Unavailable(step: step)
            }
            guard response.status == status else { throw StepError.unexpected(step, response) }
        }
        func started() async throws -> String {
            let response = try await client.send(.POST, "/v2/\(repository)/blobs/uploads/", headers: authorization)
            try expect(.accepted, response, "POST")
            guard let location = response.header("Location") else { throw StepError.unexpected("POST", response) }
            return location
        }
        switch pattern {
        case .monolithic:
            try expect(
                .created,
                try await client.send(
                    .POST, "/v2/\(repository)/blobs/uploads/?digest=\(digest)", headers: authorization, body: .bytes(blob)), "POST ?digest")
        case .postThenPut:
            let location = try await started()
            try expect(
                .created, try await client.send(.PUT, "\(location)?digest=\(digest)", headers: authorization, body: .bytes(blob)), "PUT")
        case .onePatch:
            let location = try await started()
            try expect(.accepted, try await client.send(.PATCH, location, headers: authorization, body: .chunked([blob])), "PATCH")
            try expect(.created, try await client.send(.PUT, "\(location)?digest=\(digest)", headers: authorization), "PUT")
        case .chunkedWithLastInPut:
            // The resumable pattern: after a 503 the client asks the session how much it
            // holds and carries on from there, as the distribution spec describes.
            let location = try await started()
            let pieces = Int.random(in: 2...4, using: &random)
            let size = max(1, blob.count / pieces)
            var offset = 0
            while true {
                let last = blob.count - offset <= size
                let chunk = Array(blob[offset..<(last ? blob.count : offset + size)])
                let range = chunk.isEmpty ? [] : [("Content-Range", "\(offset)-\(offset + chunk.count - 1)")]
                let response =
                    last
                    ? try await client.send(.PUT, "\(location)?digest=\(digest)", headers: authorization + range, body: .bytes(chunk))
                    : try await client.send(.PATCH, location, headers: authorization + range, body: .bytes(chunk))
                do {
                    try expect(last ? .created : .accepted, response, last ? "PUT" : "PATCH")
                } catch is Unavailable where ridingOutOutages {
                    offset = try await resumePoint(of: location, client: client, authorization: authorization)
                    continue
                }
                if last { return }
                offset += chunk.count
            }
        }
    }

    /// How much of an upload the registry holds: its status once the store is back.
    static func resumePoint(of location: String, client: TestHTTPClient, authorization: [(String, String)]) async throws -> Int {
        for _ in 0..<600 {
            try await Task.sleep(for: .milliseconds(100))
            let status = try await client.send(.GET, location, headers: authorization)
            if status.status == .serviceUnavailable { continue }
            guard status.status == .noContent, let range = status.header("Range"), let end = Int(range.split(separator: "-").last ?? "")
            else {
                throw StepError.unexpected("upload status after a 503", status)
            }
            // "0-0" is also an empty session; a first chunk is never a single byte here.
            return end == 0 ? 0 : end + 1
        }
        throw Unavailable(step: "upload status (a minute without an answer)")
    }
}
