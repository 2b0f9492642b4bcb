import Foundation
import Maintenance
import OCI
import RegistryAPI
import RegistryTesting
import XCTest

/// docs/THREATS.md: unbounded bodies and disk exhaustion.
final class ResourceExhaustionTests: XCTestCase {
    /// Peak resident memory of this process (VmHWM), in bytes.
    func peakResidentBytes() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") })
        let kilobytes = try XCTUnwrap(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
        return kilobytes * 1024
    }

    func testLargeStreamedUploadIsNeverBufferedWhole() async throws {
        // CVE-2017-11468's lesson for blobs: 512 MiB goes through with bounded memory.
        let registry = try await TestRegistry.start()
        let chunk = Fixtures.bytes(1 << 20)
        let count = 512
        let hasher = ContentHasher(algorithm: .sha256)
        for _ in 0..<count { hasher.update(chunk) }
        let digest = hasher.finalize()

        // Writing "5" to clear_refs resets the peak (Linux, proc(5)).
        try "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
        let before = try peakResidentBytes()
        let location = try await registry.client.startUpload("big")
        let patch = try await registry.client.send(.PATCH, location, body: .repeated(chunk: chunk, count: count))
        XCTAssertEqual(patch.status, .accepted, patch.text)
        let put = try await registry.client.send(.PUT, "\(location)?digest=\(digest)")
        XCTAssertEqual(put.status, .created, put.text)
        let growth = try peakResidentBytes() - before
        XCTAssertLessThan(growth, 96 << 20, "peak memory grew by \(growth >> 20) MiB for a 512 MiB upload")
        await registry.stop()
    }

    func testFullDiskAnswers507AndLeavesNothingVisible() async throws {
        let mounted = try SmallTmpfs.mount(size: "1m")
        try requireCapability(mounted != nil, "mounting a tiny tmpfs needs root")
        let disk = mounted!
        defer { disk.unmount() }
        let registry = try await TestRegistry.start(storageRoot: disk.path + "/storage")
        let blob = Fixtures.bytes(3 << 20)
        let digest = Fixtures.digest(blob)
        let monolithic = try await registry.client.send(.POST, "/v2/a/blobs/uploads/?digest=\(digest)", body: .bytes(blob))
        XCTAssertEqual(monolithic.status, .insufficientStorage, monolithic.text)
        XCTAssertEqual(monolithic.errorCodes.count, 1)
        let head = try await registry.client.send(.HEAD, "/v2/a/blobs/\(digest)")
        XCTAssertEqual(head.status, .notFound)
        let leftovers = try await registry.blobs.driver.list(under: .init(["uploads"]))
        XCTAssertEqual(leftovers, [], "the failed monolithic upload is discarded whole")

        // A chunked upload keeps what it had acknowledged and can go on once space is back.
        let location = try await registry.client.startUpload("a")
        let first = try await registry.client.send(.PATCH, location, body: .bytes(Array(blob[0..<100_000])))
        XCTAssertEqual(first.status, .accepted)
        let tooMuch = try await registry.client.send(
            .PATCH, location, headers: [("Content-Range", "100000-\(blob.count - 1)")], body: .bytes(Array(blob[100_000...])))
        XCTAssertEqual(tooMuch.status, .insufficientStorage)
        let status = try await registry.client.send(.GET, location)
        XCTAssertEqual(status.header("Range"), "0-99999")
        await registry.stop()
    }

    func testFullDiskUnderTheDatabaseAnswers507AndRecoversOnceSpaceIsFreed() async throws {
        let mounted = try SmallTmpfs.mount(size: "4m")
        try requireCapability(mounted != nil, "mounting a tiny tmpfs needs root")
        let disk = mounted!
        defer { disk.unmount() }
        // The database (and its WAL) on the small disk, the blobs elsewhere.
        let blobsElsewhere = try makeTemporaryDirectory(prefix: "registryd-blobs")
        defer { try? FileManager.default.removeItem(atPath: blobsElsewhere) }
        let registry = try await TestRegistry.start(dataDirectory: disk.path, storageRoot: blobsElsewhere)
        let config = Fixtures.json(["architecture": "amd64"])
        let layer = Fixtures.bytes(1000)
        try await registry.client.pushBlob("a", config)
        try await registry.client.pushBlob("a", layer)
        // Large enough that its commit must grow the WAL.
        let manifest = Fixtures.imageManifest(
            config: config, layers: [layer], annotations: ["filler": String(repeating: "x", count: 600_000)])

        try disk.fill()
        let refused = try await registry.client.putManifest("a", "v1", manifest)
        XCTAssertEqual(refused.status, .insufficientStorage, refused.text)
        XCTAssertEqual(refused.errorCodes, ["UNKNOWN"])
        XCTAssertTrue(refused.text.contains("storage is full"), refused.text)
        let absent = try await registry.client.send(.GET, "/v2/a/manifests/\(Fixtures.digest(manifest))")
        XCTAssertEqual(absent.status, .notFound, "nothing of the refused push is visible")
        let tags = try await registry.client.send(.GET, "/v2/a/tags/list")
        XCTAssertEqual(try tags.json()["tags"] as? [String], [])

        try disk.free()
        let accepted = try await registry.client.putManifest("a", "v1", manifest)
        XCTAssertEqual(accepted.status, .created, "the same registry, without a restart: \(accepted.text)")
        let served = try await registry.client.send(.GET, "/v2/a/manifests/v1")
        XCTAssertEqual(served.body, manifest)
        await registry.stop(keepingData: true)
    }

    func testBothDisksFullThenCollectionAndPurgeFreeSpaceWithoutARestart() async throws {
        let mounted = try SmallTmpfs.mount(size: "16m")
        try requireCapability(mounted != nil, "mounting a tiny tmpfs needs root")
        let disk = mounted!
        defer { disk.unmount() }
        // Database, WAL and blobs on one small disk.
        let registry = try await TestRegistry.start(dataDirectory: disk.path)
        XCTAssertTrue(registry.sqlite.holdsSpaceReserve, "space set aside for deletes and collections")
        let client = registry.client
        let config = Fixtures.json(["architecture": "amd64"])
        try await client.pushBlob("a", config)
        let kept = Fixtures.bytes(200_000, seed: 1)
        try await client.pushBlob("a", kept)
        let keptManifest = Fixtures.imageManifest(config: config, layers: [kept])
        let keptPut = try await client.putManifest("a", "kept", keptManifest)
        XCTAssertEqual(keptPut.status, .created)
        // An image that will be deleted, and an upload that will be abandoned, hold space.
        let doomed = Fixtures.bytes(1_500_000, seed: 2)
        try await client.pushBlob("a", doomed)
        let doomedManifest = Fixtures.imageManifest(config: config, layers: [doomed])
        _ = try await client.putManifest("a", "doomed", doomedManifest)
        let abandoned = try await client.startUpload("a")
        let partial = try await client.send(.PATCH, abandoned, body: .bytes(Fixtures.bytes(1_000_000, seed: 3)))
        XCTAssertEqual(partial.status, .accepted)

        try disk.fill()
        let blob = Fixtures.bytes(300_000, seed: 4)
        let blobPush = try await client.send(.POST, "/v2/a/blobs/uploads/?digest=\(Fixtures.digest(blob))", body: .bytes(blob))
        XCTAssertEqual(blobPush.status, .insufficientStorage, blobPush.text)
        let bigManifest = Fixtures.imageManifest(
            config: config, layers: [kept], annotations: ["filler": String(repeating: "x", count: 300_000)])
        let manifestPush = try await client.putManifest("a", "new", bigManifest)
        XCTAssertEqual(manifestPush.status, .insufficientStorage, manifestPush.text)

        // Deleting and collecting still work on the full disk, and free what they collect.
        let deleted = try await client.send(.DELETE, "/v2/a/manifests/\(Fixtures.digest(doomedManifest))")
        XCTAssertEqual(deleted.status, .accepted, deleted.text)
        let report = try await GarbageCollector(metadata: registry.metadata, blobs: registry.blobs)
            .run(GarbageCollector.Options(grace: .zero, uploadTTL: 0))
        XCTAssertTrue(report.blobs.map(\.digest.description).contains(Fixtures.digest(doomed)), "the deleted image's layer is collected")
        XCTAssertGreaterThanOrEqual(report.uploads, 1, "the abandoned upload is purged")

        // Without a restart, the registry takes pushes again, and nothing kept was lost.
        let retried = try await client.send(.POST, "/v2/a/blobs/uploads/?digest=\(Fixtures.digest(blob))", body: .bytes(blob))
        XCTAssertEqual(retried.status, .created, retried.text)
        let served = try await client.send(.GET, "/v2/a/manifests/kept")
        XCTAssertEqual(served.body, keptManifest)
        let keptLayer = try await client.send(.GET, "/v2/a/blobs/\(Fixtures.digest(kept))")
        XCTAssertEqual(Fixtures.digest(keptLayer.body), Fixtures.digest(kept))

        // The reserve, used up, is taken again once the disk has room for it.
        XCTAssertFalse(registry.sqlite.holdsSpaceReserve)
        try disk.free()
        registry.sqlite.restoreSpaceReserve()
        XCTAssertTrue(registry.sqlite.holdsSpaceReserve)
        await registry.stop(keepingData: true)
    }

    func testUploadSessionsPerPrincipalAreLimited() async throws {
        var configuration = Registry.Configuration()
        configuration.maximumUploadsPerPrincipal = 2
        let registry = try await TestRegistry.start(configuration: configuration)
        let first = try await registry.client.startUpload("a")
        _ = try await registry.client.startUpload("b")
        let third = try await registry.client.send(.POST, "/v2/c/blobs/uploads/")
        XCTAssertEqual(third.status, .tooManyRequests)
        XCTAssertEqual(third.errorCodes, ["TOOMANYREQUESTS"])
        XCTAssertNotNil(third.header("Retry-After"))
        _ = try await registry.client.send(.DELETE, first)
        let afterCancel = try await registry.client.send(.POST, "/v2/c/blobs/uploads/")
        XCTAssertEqual(afterCancel.status, .accepted, "a cancelled upload frees its place")
        await registry.stop()
    }

    func testSilentConnectionsAreClosedAfterTheIdleTimeout() async throws {
        // Slowloris: connections that send nothing (or half a request) must not stay forever.
        let registry = try await TestRegistry.start(idleTimeout: .seconds(1))
        let silent = try await registry.client.secondsUntilClosed(after: "", limit: .seconds(5))
        XCTAssertNotNil(silent, "a silent connection is closed")
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(silent), .milliseconds(950), "not before the timeout")
        let halfRequest = try await registry.client.secondsUntilClosed(after: "GET /v2/ HTTP/1.1\r\nHost: x\r\n", limit: .seconds(5))
        XCTAssertNotNil(halfRequest, "a request whose head never ends is closed")
        let working = try await registry.client.send(.GET, "/v2/")
        XCTAssertEqual(working.status, .ok, "ordinary requests are unaffected")
        // A keep-alive connection that keeps asking, every 0.4 s for 2.4 s (longer than the
        // timeout in all), is never cut; once it falls silent it is closed.
        let request = Array("GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        let started = ContinuousClock.now
        let answers = try await registry.client.exchangeRaw(Array(repeating: request, count: 7), pause: .milliseconds(400))
        XCTAssertEqual(TestHTTPClient.splitAnswers(answers).map(\.status), Array(repeating: 200, count: 7))
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(8), "closed after it fell silent, not at the client's limit")
        await registry.stop()
    }
}
