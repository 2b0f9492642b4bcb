import Control
import ControlProtocol
import Foundation
import Metadata
import NIOCore
import OCI
import RegistryTesting
import Storage
import XCTest

/// `repo.get`, `repo.delete`, `tag.history`, `upload.list`, `upload.purge`.
final class RepositoryMethodTests: XCTestCase {
    var directory: String!
    var metadata: SQLiteMetadataStore!
    var blobs: BlobStore!
    var dispatcher: ControlDispatcher!
    let repository = try! RepositoryName(parsing: "team/app")

    override func setUp() async throws {
        directory = NSTemporaryDirectory() + "/registryd-repos-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        metadata = try SQLiteMetadataStore(path: directory + "/registry.db")
        blobs = BlobStore(driver: MemoryDriver())
        dispatcher = ControlMethods(metadata: metadata, blobs: blobs, uploadTimeToLive: 3600, version: "test").makeDispatcher()
    }

    override func tearDown() async throws {
        dispatcher = nil
        blobs = nil
        metadata = nil
        try? FileManager.default.removeItem(atPath: directory)
    }

    func call(_ method: String, _ params: String) async throws -> JSONValue {
        let answer = await dispatcher.handle(
            line: #"{"jsonrpc":"2.0","method":"\#(method)","params":\#(params),"id":1}"#, caller: "uid 0 (root)")
        return try JSONDecoder().decode(JSONValue.self, from: Data(try XCTUnwrap(answer).utf8))
    }

    func pushManifest(_ content: String, tag: String) async throws -> Digest {
        let manifest = NewManifest(
            digest: Digest.of(Array(content.utf8)), mediaType: MediaType.ociManifest, content: Array(content.utf8),
            artifactType: nil, annotationsJSON: nil, requiredBlobs: [], foreignBlobs: [], childManifests: [],
            allowMissingChildren: false, subject: nil)
        try await metadata.putManifest(manifest, in: repository, tags: [Tag(parsing: tag)], actor: "alice")
        return manifest.digest
    }

    func testRepoGetShowsTagsManifestsAndSize() async throws {
        try await metadata.linkBlob(Digest.of([1, 2, 3]), size: 3, to: repository)
        let digest = try await pushManifest("one", tag: "v1")
        let response = try await call("repo.get", #"{"name":"team/app"}"#)
        let result = try XCTUnwrap(response["result"])
        XCTAssertEqual(result["tags"], [["tag": "v1", "digest": .string(digest.description)]])
        XCTAssertEqual(result["manifests"]?.arrayValue?.count, 1)
        XCTAssertEqual(result["blob_bytes"], 3)
        let missing = try await call("repo.get", #"{"name":"nope"}"#)
        XCTAssertEqual(missing["error"]?["code"], -32001)
        let bad = try await call("repo.get", #"{"name":"../x"}"#)
        XCTAssertEqual(bad["error"]?["code"], -32602)
    }

    func testTagHistorySaysWhoMovedWhatWhen() async throws {
        let first = try await pushManifest("one", tag: "latest")
        let second = try await pushManifest("two", tag: "latest")
        let response = try await call("tag.history", #"{"repository":"team/app","tag":"latest"}"#)
        let moves = try XCTUnwrap(response["result"]?["moves"]?.arrayValue)
        XCTAssertEqual(moves.count, 2)
        XCTAssertEqual(moves[0]["from"], .string(first.description))
        XCTAssertEqual(moves[0]["to"], .string(second.description))
        XCTAssertEqual(moves[0]["actor"], "alice")
        XCTAssertEqual(moves[1]["from"], .null)
    }

    func testRepoDeleteRemovesEverythingButBlobBytesAndIsAudited() async throws {
        _ = try await pushManifest("one", tag: "v1")
        let session = UploadSession(id: .generate(), repository: repository, principal: "alice", algorithm: .sha256, createdAt: 1)
        try await metadata.createUpload(session)
        let appender = try await blobs.driver.appender(for: BlobStore.path(forUpload: session.id), truncatingTo: 0)
        try await appender.append(ByteBuffer(bytes: [1, 2, 3]))
        let deleted = try await call("repo.delete", #"{"name":"team/app"}"#)
        XCTAssertEqual(deleted["result"]?["uploads_removed"], 1)
        await assertNil(try await metadata.repositorySummary(repository))
        await assertNil(try await metadata.upload(session.id))
        let leftover = try await blobs.uploadSize(session.id)
        XCTAssertNil(leftover)
        await assertEqual(try await metadata.auditEntries(limit: 5).map(\.method), ["repo.delete"])
        await assertEqual(try await metadata.auditEntries(limit: 5).first?.actor, "uid 0 (root)")
    }

    func testUploadPurgeRemovesIdleSessionsAndOrphansOnlyWhenNotADryRun() async throws {
        let stale = UploadSession(
            id: .generate(), repository: repository, principal: nil, algorithm: .sha256, createdAt: Int64(Date().timeIntervalSince1970))
        try await metadata.createUpload(stale)
        let orphan = UploadID.generate()
        for id in [stale.id, orphan] {
            let appender = try await blobs.driver.appender(for: BlobStore.path(forUpload: id), truncatingTo: 0)
            try await appender.append(ByteBuffer(bytes: [7, 7]))
        }
        let listed = try await call("upload.list", "{}")
        XCTAssertEqual(listed["result"]?["uploads"]?.arrayValue?.count, 1)

        let dryRun = try await call("upload.purge", #"{"older_than":0,"dry_run":true}"#)
        XCTAssertEqual(dryRun["result"]?["orphaned_objects"], [.string(orphan.value)])
        await assertNotNil(try await metadata.upload(stale.id), "a dry run changes nothing")

        // Fresh sessions survive the default time-to-live.
        let fresh = try await call("upload.purge", "{}")
        XCTAssertEqual(fresh["result"]?["sessions"]?.arrayValue?.count, 0)
        await assertNotNil(try await metadata.upload(stale.id))

        let purged = try await call("upload.purge", #"{"older_than":0}"#)
        XCTAssertEqual(purged["result"]?["sessions"]?.arrayValue?.count, 1)
        await assertNil(try await metadata.upload(stale.id))
        let remaining = try await blobs.driver.list(under: BlobStore.uploadsPrefix)
        XCTAssertEqual(remaining, [])
    }
}

/// `gc.run` / `gc.status` through the dispatcher.
final class CollectionMethodTests: XCTestCase {
    func testRunWaitsReportsAndAudits() async throws {
        let directory = NSTemporaryDirectory() + "/registryd-gc-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let metadata = try SQLiteMetadataStore(path: directory + "/registry.db")
        let blobs = BlobStore(driver: MemoryDriver())
        let dispatcher = ControlMethods(metadata: metadata, blobs: blobs, version: "test").makeDispatcher()
        // An unreferenced, unlinked blob with bytes.
        let digest = Digest.of([1, 2, 3])
        let id = UploadID.generate()
        let appender = try await blobs.driver.appender(for: BlobStore.path(forUpload: id), truncatingTo: 0)
        try await appender.append(ByteBuffer(bytes: [1, 2, 3]))
        await assertTrue(try await metadata.pinBlob(digest, size: 3, for: id))
        try await blobs.placeUpload(id, as: digest, size: 3)
        try await metadata.unpinBlob(for: id)

        func call(_ method: String, _ params: String) async throws -> JSONValue {
            let answer = await dispatcher.handle(
                line: #"{"jsonrpc":"2.0","method":"\#(method)","params":\#(params),"id":1}"#, caller: "uid 0 (root)")
            return try JSONDecoder().decode(JSONValue.self, from: Data(try XCTUnwrap(answer).utf8))
        }
        let dry = try await call("gc.run", #"{"grace":0,"dry_run":true,"wait":true}"#)
        XCTAssertEqual(dry["result"]?["blobs"]?.arrayValue?.count, 1)
        let stillThere = try await blobs.size(of: digest)
        XCTAssertEqual(stillThere, 3)
        let real = try await call("gc.run", #"{"grace":0,"wait":true}"#)
        XCTAssertEqual(real["result"]?["bytes_freed"], 3)
        let gone = try await blobs.size(of: digest)
        XCTAssertNil(gone)
        let status = try await call("gc.status", "{}")
        XCTAssertEqual(status["result"]?["phase"], "idle")
        XCTAssertEqual(status["result"]?["last"]?["bytes_freed"], 3)
        let audit = try await metadata.auditEntries(limit: 5)
        XCTAssertTrue(audit.contains { $0.method == "gc.run" }, "\(audit)")
        // The result is recorded as counts, never as the list of what went.
        let result = try XCTUnwrap(audit.first { $0.method == "gc.result" }?.params)
        let tally = try JSONDecoder().decode(JSONValue.self, from: Data(result.utf8))
        XCTAssertEqual(tally["blobs"], 1)
        XCTAssertEqual(tally["bytes_freed"], 3)
        XCTAssertFalse(result.contains(digest.description), result)
        let bad = try await call("gc.run", #"{"grace":-1}"#)
        XCTAssertEqual(bad["error"]?["code"], -32602)
    }

    /// Two instances on one PostgreSQL database: while one collects, the other's
    /// `gc.status` shows it and its `gc.run` answers busy, naming the collecting instance.
    func testACollectionOnAnotherInstanceIsShownAndBlocksARun() async throws {
        let location = try await TestPostgres.makeDatabase()
        let collecting = try await PostgresMetadataStore(location: location, instance: "node-a")
        let other = try await PostgresMetadataStore(location: location, instance: "node-b")
        let dispatcher = ControlMethods(metadata: other, blobs: BlobStore(driver: MemoryDriver()), version: "test").makeDispatcher()
        func call(_ method: String, _ params: String) async throws -> JSONValue {
            let answer = await dispatcher.handle(
                line: #"{"jsonrpc":"2.0","method":"\#(method)","params":\#(params),"id":1}"#, caller: "uid 0 (root)")
            return try JSONDecoder().decode(JSONValue.self, from: Data(try XCTUnwrap(answer).utf8))
        }
        let release = AsyncStream<Void>.makeStream()
        let started = AsyncStream<Void>.makeStream()
        let holder = Task {
            try await collecting.whileHoldingCollectionLock {
                started.continuation.yield()
                for await _ in release.stream { break }
                return true
            }
        }
        for await _ in started.stream { break }
        let status = try await call("gc.status", "{}")
        XCTAssertEqual(status["result"]?["running_elsewhere"]?["instance"], "node-a", "\(status)")
        let refused = try await call("gc.run", #"{"grace":0,"wait":true}"#)
        XCTAssertEqual(refused["error"]?["code"], -32003, "\(refused)")
        XCTAssertTrue(refused["error"]?["data"]?["detail"]?.stringValue?.contains("node-a") == true, "\(refused)")
        release.continuation.yield()
        _ = try await holder.value
        let after = try await call("gc.status", "{}")
        XCTAssertEqual(after["result"]?["running_elsewhere"], .null)
        let run = try await call("gc.run", #"{"grace":0,"wait":true}"#)
        XCTAssertNotNil(run["result"], "\(run)")
        await collecting.close()
        await other.close()
        try await TestPostgres.dropDatabase(location)
    }
}
