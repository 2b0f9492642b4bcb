import Foundation
import Maintenance
import NIOCore
import OCI
import RegistryTesting
import Storage
import XCTest

/// A configuration for a fresh bucket on the tests' radosgw (see `TestObjectStore`).
func s3TestConfiguration(partSize: Int = S3Configuration.defaultPartSize, redirect: Bool = false) throws -> S3Configuration {
    try onTheTestStore { try TestObjectStore.configuration(partSize: partSize, redirect: redirect) }
}

/// Reads what the tests' radosgw offers; without one, a skip where that is allowed
/// (`TestObjectStore.mayBeSkipped`), else the failure.
func onTheTestStore<T>(_ read: () throws -> T) throws -> T {
    do {
        return try read()
    } catch TestObjectStoreError.notConfigured where TestObjectStore.mayBeSkipped {
        throw XCTSkip("REGISTRYD_SKIP_S3_TESTS is set")
    }
}

/// Every real-client flow of `ClientTests` (podman, skopeo, buildah, garbage
/// collection) again, with the blobs in radosgw.
final class S3ClientTests: ClientTests {
    override func startRegistry() async throws -> TestRegistry {
        try await TestRegistry.start(driver: .s3(s3TestConfiguration()))
    }

    func testPushedBlobsAreObjectsInTheBucket() async throws {
        let layout = try await tools.makeImage("bucket", layers: 3, layerSize: 300_000, seed: 21)
        try await tools.skopeo("copy", "--dest-tls-verify=false", "oci:\(layout):latest", "docker://\(registry.address)/s3/image:v1")
        // Read back with the driver's own listing: one object per config and layer blob,
        // at its content address, and no upload left behind.
        let objects = try await registry.blobs.driver.list(under: StoragePath("blobs")).map(\.description)
        XCTAssertEqual(objects.count, 4, "\(objects)")
        for object in objects {
            let segments = object.split(separator: "/")
            XCTAssertEqual(segments.count, 5)
            XCTAssertEqual(segments[3].prefix(2), segments[2])
        }
        let uploads = try await registry.blobs.driver.list(under: BlobStore.uploadsPrefix)
        XCTAssertEqual(uploads, [])
    }
}

/// Logins and pushes in both auth modes, with the blobs in radosgw.
final class S3LoginTests: LoginTests {
    override func driver() throws -> TestRegistry.DriverKind { .s3(try s3TestConfiguration()) }

    func testPushedLayerIsReadableOnlyThroughTheRegistry() async throws {
        // Without redirects the bucket's objects are never handed out: a blob's bytes
        // come through registryd, behind its auth.
        try await start(.basic)
        try await registry.createUser("staff", password: "pw", staff: true)
        let blob = Fixtures.bytes(10_000, seed: 31)
        let digest = Fixtures.digest(blob)
        let basic = "Basic " + Data("staff:pw".utf8).base64EncodedString()
        let location = try await registry.client.send(
            .POST, "/v2/p/q/blobs/uploads/?digest=\(digest)", headers: [("Authorization", basic)], body: .bytes(blob))
        XCTAssertEqual(location.status, .created, location.text)
        let anonymous = try await registry.client.send(.GET, "/v2/p/q/blobs/\(digest)")
        XCTAssertEqual(anonymous.status, .unauthorized)
        let authorized = try await registry.client.send(.GET, "/v2/p/q/blobs/\(digest)", headers: [("Authorization", basic)])
        XCTAssertEqual(authorized.body, blob)
    }
}

/// What only an object store brings: big multipart blobs, restarts between chunks,
/// presigned redirects, multipart uploads a crash left behind, the daemon's own flags.
final class S3RegistryTests: XCTestCase {
    func testGigabyteBlobRoundTripsWithTheRightDigest() async throws {
        let registry = try await TestRegistry.start(driver: .s3(s3TestConfiguration()))
        let chunk = Fixtures.bytes(1 << 20, seed: 11)
        let count = 1024
        let hasher = ContentHasher(algorithm: .sha256)
        for _ in 0..<count { hasher.update(chunk) }
        let digest = hasher.finalize().description

        let location = try await registry.client.startUpload("big/blob")
        let started = ContinuousClock.now
        let put = try await registry.client.send(.PUT, "\(location)?digest=\(digest)", body: .repeated(chunk: chunk, count: count))
        XCTAssertEqual(put.status, .created, put.text)
        let pushed = ContinuousClock.now - started
        let head = try await registry.client.send(.HEAD, "/v2/big/blob/blobs/\(digest)")
        XCTAssertEqual(head.header("Content-Length"), String(count << 20))

        // Pulled through registryd (streamed from radosgw) and hashed by sha256sum.
        let pullStarted = ContinuousClock.now
        let pulled = try await Self.shell("curl -sf http://\(registry.address)/v2/big/blob/blobs/\(digest) | sha256sum")
        XCTAssertEqual(pulled.split(separator: " ").first.map(String.init), String(digest.dropFirst("sha256:".count)))
        print("1 GiB through radosgw (debug build): push \(pushed), pull \(ContinuousClock.now - pullStarted)")

        // The bytes are one object at the blob's address, and no upload is left over (the
        // listing shows multipart uploads in progress too).
        let uploads = try await registry.blobs.driver.list(under: BlobStore.uploadsPrefix)
        XCTAssertEqual(uploads, [])
        let objects = try await registry.blobs.driver.list(under: StoragePath("blobs")).map(\.description)
        XCTAssertEqual(objects, [BlobStore.path(for: try Digest(parsing: digest)).description])
        let stored = try await registry.blobs.size(of: Digest(parsing: digest))
        XCTAssertEqual(stored, Int64(count << 20))
        try await registry.blobs.deleteBlob(Digest(parsing: digest))  // radosgw keeps objects in memory
        await registry.stop()
    }

    func testMonolithicPushWithAWrongDigestLeavesNothingInTheStore() async throws {
        // Written to the claimed digest's key as a multipart upload (three parts here), so
        // the check must abort it: no object, no upload in progress.
        let registry = try await TestRegistry.start(driver: .s3(s3TestConfiguration(partSize: S3Configuration.minimumPartSize)))
        let blob = Fixtures.bytes(12 << 20, seed: 13)
        let claimed = Fixtures.digest(Fixtures.bytes(10, seed: 14))
        let location = try await registry.client.startUpload("w/x")
        let wrong = try await registry.client.send(.PUT, "\(location)?digest=\(claimed)", body: .bytes(blob))
        XCTAssertEqual(wrong.status, .badRequest, wrong.text)
        XCTAssertTrue(wrong.text.contains("DIGEST_INVALID"), wrong.text)
        let objects = try await registry.blobs.driver.list(under: StoragePath("blobs"))
        XCTAssertEqual(objects, [])
        let uploads = try await registry.blobs.driver.list(under: BlobStore.uploadsPrefix)
        XCTAssertEqual(uploads, [])

        let again = try await registry.client.startUpload("w/x")
        let right = try await registry.client.send(.PUT, "\(again)?digest=\(Fixtures.digest(blob))", body: .bytes(blob))
        XCTAssertEqual(right.status, .created, right.text)
        let get = try await registry.client.send(.GET, "/v2/w/x/blobs/\(Fixtures.digest(blob))")
        XCTAssertEqual(get.body, blob)
        await registry.stop()
    }

    func testABlobBeingPlacedIsNoOrphanToTheVerifier() async throws {
        // On S3 a monolithic push writes to the blob's own key before the blob has a row;
        // a repairing verification meanwhile must neither report nor delete it.
        let registry = try await TestRegistry.start(driver: .s3(s3TestConfiguration(partSize: S3Configuration.minimumPartSize)))
        let bytes = Fixtures.bytes(6 << 20, seed: 15)
        let digest = Digest.of(bytes)
        let writer = try await registry.blobs.driver.placingWriter(to: BlobStore.path(for: digest), staging: StoragePath("uploads/v/data"))
        try await writer.append(ByteBuffer(bytes: bytes))  // a whole part goes out: the multipart upload exists
        let listed = try await registry.blobs.driver.list(under: StoragePath("blobs"))
        XCTAssertEqual(listed, [BlobStore.path(for: digest)], "the write in progress is listed")
        let report = try await StorageVerifier(metadata: registry.metadata, blobs: registry.blobs).verify(sample: nil, repair: true)
        XCTAssertEqual(report.orphanedBytes, [])
        try await writer.commit()
        let placed = try await registry.blobs.size(of: digest)
        XCTAssertEqual(placed, Int64(bytes.count))
        await registry.stop()
    }

    func testChunkedUploadResumesAfterARestart() async throws {
        let configuration = try s3TestConfiguration(partSize: S3Configuration.minimumPartSize)
        // The first chunk is bigger than a part, so the second request starts with a
        // server-side copy of it.
        let blob = Fixtures.bytes(9 << 20, seed: 12)
        let split = 6 << 20
        let first = try await TestRegistry.start(driver: .s3(configuration))
        let location = try await first.client.startUpload("a/b")
        let patch = try await first.client.send(
            .PATCH, location, headers: [("Content-Range", "0-\(split - 1)")], body: .bytes(Array(blob[..<split])))
        XCTAssertEqual(patch.status, .accepted, patch.text)
        await first.stop(keepingData: true)

        let second = try await TestRegistry.start(driver: .s3(configuration), dataDirectory: first.dataDirectory)
        let status = try await second.client.send(.GET, location)
        XCTAssertEqual(status.header("Range"), "0-\(split - 1)")
        let rest = try await second.client.send(
            .PATCH, location, headers: [("Content-Range", "\(split)-\(blob.count - 1)")], body: .bytes(Array(blob[split...])))
        XCTAssertEqual(rest.status, .accepted, rest.text)
        // The second request's bytes are an object of their own: the first chunk was not
        // copied again, and the two are joined once when the blob is placed.
        let pieces = try await second.blobs.driver.list(under: BlobStore.uploadsPrefix).map { $0.segments.last ?? "" }.sorted()
        XCTAssertEqual(pieces, ["data", "data-\(split)"])
        let put = try await second.client.send(.PUT, "\(location)?digest=\(Fixtures.digest(blob))")
        XCTAssertEqual(put.status, .created, put.text)
        let uploads = try await second.blobs.driver.list(under: BlobStore.uploadsPrefix)
        XCTAssertEqual(uploads, [])
        let get = try await second.client.send(.GET, "/v2/a/b/blobs/\(Fixtures.digest(blob))")
        XCTAssertEqual(get.body, blob)
        let range = try await second.client.send(
            .GET, "/v2/a/b/blobs/\(Fixtures.digest(blob))", headers: [("Range", "bytes=6291000-6292000")])
        XCTAssertEqual(range.status, .partialContent)
        XCTAssertEqual(range.body, Array(blob[6_291_000...6_292_000]))
        await second.stop()
    }

    func testBlobGetsRedirectToAPresignedURL() async throws {
        let registry = try await TestRegistry.start(driver: .s3(s3TestConfiguration(redirect: true)))
        let blob = Fixtures.bytes(100_000, seed: 13)
        let digest = try await registry.client.pushBlob("r/x", blob)
        let get = try await registry.client.send(.GET, "/v2/r/x/blobs/\(digest)")
        XCTAssertEqual(get.status, .temporaryRedirect)
        XCTAssertEqual(get.header("Docker-Content-Digest"), digest)
        let location = try XCTUnwrap(get.header("Location"))
        let fetched = try await Self.shell("curl -sf '\(location)' | sha256sum")
        XCTAssertEqual(fetched.split(separator: " ").first.map(String.init), String(digest.dropFirst("sha256:".count)))
        // HEAD answers from the metadata; an unknown blob is still a 404, never a redirect.
        let head = try await registry.client.send(.HEAD, "/v2/r/x/blobs/\(digest)")
        XCTAssertEqual(head.status, .ok)
        let unknown = try await registry.client.send(.GET, "/v2/r/x/blobs/\(Fixtures.digest([1]))")
        XCTAssertEqual(unknown.status, .notFound)
        await registry.stop()
    }

    func testThePurgeAbortsAMultipartUploadACrashLeft() async throws {
        let configuration = try s3TestConfiguration(partSize: S3Configuration.minimumPartSize)
        let registry = try await TestRegistry.start(driver: .s3(configuration))
        // A daemon killed during an upload's first request: parts, no object, no session.
        let driver = S3Driver(configuration: configuration)
        let orphan = try StoragePath("uploads/deadbeef/data")
        let appender = try await driver.appender(for: orphan, truncatingTo: 0)
        for _ in 0..<6 { try await appender.append(ByteBuffer(bytes: Fixtures.bytes(1 << 20, seed: 14))) }
        // No sync, no close: the parts stay in the store as an incomplete multipart upload.
        let listed = try await driver.list(under: BlobStore.uploadsPrefix).map(\.description)
        XCTAssertEqual(listed, ["uploads/deadbeef/data"])

        let purger = UploadPurger(metadata: registry.metadata, blobs: registry.blobs)
        let report = try await purger.purge(idleLongerThan: 0, now: Int64(Date().timeIntervalSince1970) + 10)
        XCTAssertEqual(report.orphans, ["deadbeef"])
        let remaining = try await driver.list(under: BlobStore.uploadsPrefix)
        XCTAssertEqual(remaining, [], "the multipart upload is aborted, its parts freed")
        await registry.stop()
    }

    func testDaemonStartsOnS3FromFlagsAndEnvironmentAndRefusesABadSecret() async throws {
        let configuration = try s3TestConfiguration()
        let directory = try makeTemporaryDirectory(prefix: "registryd-s3-daemon")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = try DaemonTests.freePort()
        let endpoint = "\(configuration.scheme)://\(configuration.host):\(configuration.port)"
        let arguments = [
            "--listen", "127.0.0.1:\(port)", "--data-dir", directory, "--storage", "s3",
            "--s3-endpoint", endpoint, "--s3-bucket", configuration.bucket, "--s3-prefix", "registry",
        ]

        let good = try Self.startDaemon(
            arguments, secret: configuration.credentials.secretAccessKey, accessKey: configuration.credentials.accessKeyID,
            log: directory + "/good.log")
        defer { if good.isRunning { good.terminate(); good.waitUntilExit() } }
        var serving = false
        for _ in 0..<100 where !serving {
            if let response = try? await TestHTTPClient(port: port).send(.GET, "/v2/"), response.status == .unauthorized {
                serving = true
            } else {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        XCTAssertTrue(serving, (try? String(contentsOfFile: directory + "/good.log", encoding: .utf8)) ?? "")
        // The daemon created the bucket it was pointed at.
        let listed = try await S3Driver(configuration: configuration).list(under: StoragePath("registry"))
        XCTAssertEqual(listed, [])
        good.terminate()
        good.waitUntilExit()

        let bad = try Self.startDaemon(
            arguments, secret: "not-the-secret", accessKey: configuration.credentials.accessKeyID, log: directory + "/bad.log")
        bad.waitUntilExit()
        XCTAssertNotEqual(bad.terminationStatus, 0)
        let message = try String(contentsOfFile: directory + "/bad.log", encoding: .utf8)
        XCTAssertTrue(message.contains("SignatureDoesNotMatch") || message.contains("403"), message)
        XCTAssertFalse(message.contains("not-the-secret"), "the secret is never logged")
    }

    private static func startDaemon(_ arguments: [String], secret: String, accessKey: String, log: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DaemonTests.buildDirectory + "/registryd")
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["AWS_ACCESS_KEY_ID"] = accessKey
        environment["AWS_SECRET_ACCESS_KEY"] = secret
        process.environment = environment
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return process
    }

    @discardableResult
    static func shell(_ script: String) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-o", "pipefail", "-c", script]
        let output = NSTemporaryDirectory() + "/shell-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: output) }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        let text = try String(contentsOfFile: output, encoding: .utf8)
        guard status == 0 else { throw S3TestError.commandFailed(script, status) }
        return text
    }
}

enum S3TestError: Error {
    case commandFailed(String, Int32)
}
