import Foundation
import NIOCore
import RegistryTesting
import XCTest

@testable import Storage

/// The S3 driver against a real S3 server: the radosgw `scripts/test.sh` starts. The
/// contract suite runs with 5 MiB parts, so its 3 MB object is still a single PUT while
/// the tests below cross part boundaries, copy server-side and truncate.
final class S3DriverTests: StorageDriverContract {
    /// The contract tests' bucket, fresh for each test.
    private var configuration: S3Configuration!

    override func setUp() async throws {
        configuration = try Self.configuration()
        try await S3Driver(configuration: configuration).prepare()
    }

    override func makeDriver() throws -> any StorageDriver { S3Driver(configuration: configuration) }

    private static func configuration(prefix: String = "", redirect: Bool = false) throws -> S3Configuration {
        do {
            return try TestObjectStore.configuration(redirect: redirect, prefix: prefix)
        } catch TestObjectStoreError.notConfigured where TestObjectStore.mayBeSkipped {
            throw XCTSkip("REGISTRYD_SKIP_S3_TESTS is set")
        }
    }

    /// A driver on a bucket of its own, created.
    private func preparedDriver(prefix: String = "") async throws -> S3Driver {
        try await S3Driver.prepared(Self.configuration(prefix: prefix))
    }

    private func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
    }

    private func append(_ driver: S3Driver, _ path: StoragePath, _ bytes: [UInt8], truncatingTo: Int64?, chunk: Int = 1 << 20) async throws
    {
        let appender = try await driver.appender(for: path, truncatingTo: truncatingTo)
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + chunk, bytes.count)
            try await appender.append(ByteBuffer(bytes: bytes[offset..<end]))
            offset = end
        }
        try await appender.sync()
        try await appender.close()
    }

    private func contents(_ driver: S3Driver, _ path: StoragePath) async throws -> [UInt8] {
        Array(try await driver.read(path, range: nil).collect(upTo: 1 << 28).readableBytesView)
    }

    func testMultipartAppendsCopyServerSideAndTruncate() async throws {
        let driver = try await preparedDriver()
        let path = try StoragePath("uploads/big/data")
        // 12 MiB: two 5 MiB parts and a 2 MiB last part.
        let first = pattern(12 << 20, seed: 1)
        try await append(driver, path, first, truncatingTo: 0)
        var expected = first
        var stored = try await contents(driver, path)
        XCTAssertEqual(stored, expected)
        // Appending: the 12 MiB come in as copied parts, 3 MiB more are uploaded.
        let second = pattern(3 << 20, seed: 2)
        try await append(driver, path, second, truncatingTo: nil)
        expected += second
        stored = try await contents(driver, path)
        XCTAssertEqual(stored, expected)
        // Cut to 7 MiB (a server-side range copy) and append; then to 3 MiB (read back).
        let third = pattern(1000, seed: 3)
        try await append(driver, path, third, truncatingTo: 7 << 20)
        expected = Array(expected[..<(7 << 20)]) + third
        stored = try await contents(driver, path)
        XCTAssertEqual(stored, expected)
        try await append(driver, path, [], truncatingTo: 3 << 20)
        let size = try await driver.size(of: path)
        XCTAssertEqual(size, 3 << 20)
        let range = try await driver.read(path, range: 1_000_000..<2_500_000).collect(upTo: 1 << 22)
        XCTAssertEqual(Array(range.readableBytesView), Array(expected[1_000_000..<2_500_000]))
        let leftovers = try await driver.multipartUploads(prefix: "")
        XCTAssertEqual(leftovers.count, 0, "every multipart upload was completed")
    }

    func testObjectsOverTheCopyLimitMoveAsMultipartCopies() async throws {
        // With the single-copy limit lowered to 10 MiB, a 25 MiB object moves as three
        // UploadPartCopy pieces of 8⅓ MiB, as a 12 GiB blob would move in 5 GiB pieces.
        let driver = S3Driver(configuration: configuration, maximumCopySize: 10 << 20)
        let source = try StoragePath("uploads/huge/data")
        let destination = try StoragePath("blobs/sha256/ab/abcd/data")
        let bytes = pattern(25 << 20, seed: 7)
        try await append(driver, source, bytes, truncatingTo: 0)
        try await driver.move(from: source, to: destination)
        let moved = try await contents(driver, destination)
        XCTAssertEqual(moved, bytes)
        let gone = try await driver.size(of: source)
        XCTAssertNil(gone)
        // Appending to an object over the limit copies it in pieces too.
        try await append(driver, destination, [9, 9], truncatingTo: nil)
        let appended = try await driver.size(of: destination)
        XCTAssertEqual(appended, Int64(bytes.count + 2))
    }

    func testCloseWithoutSyncLeavesTheObjectAsItWas() async throws {
        let driver = try await preparedDriver()
        let path = try StoragePath("uploads/failed/data")
        let original = pattern(6 << 20, seed: 4)
        try await append(driver, path, original, truncatingTo: 0)
        // A request that breaks off after 11 MiB: parts were sent, nothing was completed.
        let appender = try await driver.appender(for: path, truncatingTo: nil)
        for _ in 0..<11 { try await appender.append(ByteBuffer(bytes: pattern(1 << 20, seed: 5))) }
        try await appender.close()
        let stored = try await contents(driver, path)
        XCTAssertEqual(stored, original)
        let leftovers = try await driver.multipartUploads(prefix: "")
        XCTAssertEqual(leftovers.count, 0, "the broken request's multipart upload was aborted")
    }

    func testCrashLeftoversAreListedAndAborted() async throws {
        let driver = try await preparedDriver(prefix: "registry/v1")
        // What a daemon killed mid-request leaves: a multipart upload and no object.
        let key = driver.key(try StoragePath("uploads/crashed/data"))
        XCTAssertEqual(key, "registry/v1/uploads/crashed/data")
        let upload = try await driver.createMultipartUpload(key: key)
        _ = try await driver.uploadPart(key: key, upload: upload, number: 1, body: ByteBuffer(bytes: pattern(100, seed: 6)))
        let listed = try await driver.list(under: try StoragePath("uploads")).map(\.description)
        XCTAssertEqual(listed, ["uploads/crashed/data"], "the purge sees the upload")
        let young = try await driver.abortAbandonedWrites(olderThan: .seconds(3600), now: Date())
        XCTAssertEqual(young, 0, "a young multipart upload may still be in use")
        let aborted = try await driver.abortAbandonedWrites(olderThan: .seconds(60), now: Date().addingTimeInterval(120))
        XCTAssertEqual(aborted, 1)
        let afterwards = try await driver.list(under: try StoragePath("uploads"))
        XCTAssertEqual(afterwards, [])

        // An appender on a key with a stale multipart upload aborts it first.
        let stale = try await driver.createMultipartUpload(key: key)
        try await append(driver, try StoragePath("uploads/crashed/data"), [1, 2, 3], truncatingTo: 0)
        let remaining = try await driver.multipartUploads(prefix: key)
        XCTAssertFalse(remaining.contains { $0.id == stale })
        let stored = try await contents(driver, try StoragePath("uploads/crashed/data"))
        XCTAssertEqual(stored, [1, 2, 3])
    }

    func testPlacingWriteGoesUnseenToItsOwnKeyAndSurvivesADeleteOfThatKey() async throws {
        let driver = try await preparedDriver()
        let destination = try StoragePath("blobs/sha256/ab/abcd/data")
        let staging = try StoragePath("uploads/direct/data")
        let bytes = pattern(12 << 20, seed: 7)
        let writer = try await driver.placingWriter(to: destination, staging: staging)
        for start in stride(from: 0, to: bytes.count, by: 1 << 20) {
            try await writer.append(ByteBuffer(bytes: bytes[start..<min(start + (1 << 20), bytes.count)]))
        }
        // The parts went to the blob's own key, as a multipart upload no reader sees.
        let inFlight = try await driver.multipartUploads(prefix: driver.key(destination))
        XCTAssertEqual(inFlight.count, 1)
        let unseen = try await driver.size(of: destination)
        XCTAssertNil(unseen)
        // A collection deleting the blob's previous copy leaves the write alone.
        try await driver.delete(destination)
        try await writer.commit()
        let placed = try await contents(driver, destination)
        XCTAssertEqual(placed, bytes)
        let staged = try await driver.size(of: staging)
        XCTAssertNil(staged, "nothing was staged, so nothing was copied")
        let leftovers = try await driver.multipartUploads(prefix: "")
        XCTAssertEqual(leftovers.count, 0)

        let other = try StoragePath("blobs/sha256/ef/efgh/data")
        let aborted = try await driver.placingWriter(to: other, staging: staging)
        for _ in 0..<6 { try await aborted.append(ByteBuffer(bytes: pattern(1 << 20, seed: 8))) }
        try await aborted.abort()
        let abortedSize = try await driver.size(of: other)
        XCTAssertNil(abortedSize)
        let afterAbort = try await driver.multipartUploads(prefix: "")
        XCTAssertEqual(afterAbort.count, 0, "the aborted write's parts are freed")
    }

    func testConcatenationCopiesLargePiecesAndSendsSmallOnesWithTheirNeighbours() async throws {
        let driver = try await preparedDriver()
        // Small, large, small, large, small around the 5 MiB minimum part.
        let sizes = [2 << 20, 7 << 20, 1 << 20, 6 << 20, 3 << 20]
        var whole: [UInt8] = []
        var sources: [StoragePath] = []
        for (index, size) in sizes.enumerated() {
            let bytes = pattern(size, seed: UInt8(20 + index))
            let path = try StoragePath("uploads/joined/data-\(whole.count)")
            try await append(driver, path, bytes, truncatingTo: 0)
            whole += bytes
            sources.append(path)
        }
        let destination = try StoragePath("blobs/sha256/jo/joined/data")
        try await driver.concatenate(sources, into: destination)
        let joined = try await contents(driver, destination)
        XCTAssertEqual(joined.count, whole.count)
        XCTAssertTrue(joined == whole, "the pieces in order")
        let leftovers = try await driver.multipartUploads(prefix: "")
        XCTAssertEqual(leftovers.count, 0)
        // Less than a part in all: one plain object.
        let small = try StoragePath("blobs/sha256/sm/small/data")
        try await driver.concatenate([sources[0], sources[2]], into: small)
        let smallSize = try await driver.size(of: small)
        XCTAssertEqual(smallSize, Int64(3 << 20))
    }

    func testDeleteOfAnUploadDirectoryAbortsItsMultipartUploads() async throws {
        let driver = try await preparedDriver()
        let key = driver.key(try StoragePath("uploads/gone/data"))
        _ = try await driver.createMultipartUpload(key: key)
        try await driver.delete(try StoragePath("uploads/gone"))
        let remaining = try await driver.multipartUploads(prefix: "")
        XCTAssertEqual(remaining.count, 0)
    }

    func testPresignedURLServesTheObjectWithoutCredentials() async throws {
        let driver = try await S3Driver.prepared(Self.configuration(redirect: true))
        let path = try StoragePath("blobs/x/data")
        try await append(driver, path, Array("presigned bytes".utf8), truncatingTo: 0)
        let url = try XCTUnwrap(driver.downloadURL(for: path))
        XCTAssertTrue(url.contains("X-Amz-Signature="))
        let (data, status) = try await Self.fetch(url)
        XCTAssertEqual(status, 200)
        XCTAssertEqual(String(decoding: data, as: UTF8.self), "presigned bytes")
        // Tampering with the URL breaks the signature.
        let (_, tampered) = try await Self.fetch(url.replacingOccurrences(of: "X-Amz-Expires=1200", with: "X-Amz-Expires=9999"))
        XCTAssertEqual(tampered, 403)
        XCTAssertNil(S3Driver(configuration: configuration).downloadURL(for: path), "no redirects unless configured")
    }

    func testWrongCredentialsFailClearly() async throws {
        let good: S3Configuration = configuration
        let bad = try S3Configuration(
            endpoint: "\(good.scheme)://\(good.host):\(good.port)", bucket: good.bucket,
            credentials: S3Credentials(accessKeyID: good.credentials.accessKeyID, secretAccessKey: "wrong"))
        do {
            try await S3Driver(configuration: bad).prepare()
            XCTFail("a wrong secret must be refused")
        } catch StorageError.io(let failure) {
            let message = failure.description
            XCTAssertTrue(message.contains("SignatureDoesNotMatch") || message.contains("403"), message)
            XCTAssertFalse(message.contains("wrong"), "the secret is not echoed")
        }
    }

    func testBadConfigurationIsRefused() {
        let credentials = S3Credentials(accessKeyID: "a", secretAccessKey: "b")
        XCTAssertThrowsError(try S3Configuration(endpoint: "ftp://x", bucket: "bucket", credentials: credentials))
        XCTAssertThrowsError(try S3Configuration(endpoint: "http://x/path", bucket: "bucket", credentials: credentials))
        XCTAssertThrowsError(try S3Configuration(endpoint: "http://x:99999", bucket: "bucket", credentials: credentials))
        XCTAssertThrowsError(try S3Configuration(endpoint: "http://x", bucket: "Bad_Bucket", credentials: credentials))
        XCTAssertThrowsError(try S3Configuration(endpoint: "http://x", bucket: "bucket", prefix: "../up", credentials: credentials))
        XCTAssertThrowsError(try S3Configuration(endpoint: "http://x", bucket: "bucket", credentials: credentials, partSize: 1 << 20))
        XCTAssertThrowsError(
            try S3Configuration(endpoint: "http://x", bucket: "bucket", credentials: S3Credentials(accessKeyID: "", secretAccessKey: "")))
        let virtual = try? S3Configuration(
            endpoint: "https://s3.example.com/", bucket: "bucket", prefix: "/a/b/", addressing: .virtualHost, credentials: credentials)
        XCTAssertEqual(virtual?.authority, "bucket.s3.example.com")
        XCTAssertEqual(virtual?.requestPath(key: "k"), "/k")
        XCTAssertEqual(virtual?.prefix, "a/b")
    }

    /// A plain GET with curl: the presigned URL must work for any HTTP client.
    static func fetch(_ url: String) async throws -> (Data, Int) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("presigned-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-s", "-o", output, "-w", "%{http_code}", url]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        let status = Int(String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)) ?? 0
        return ((try? Data(contentsOf: URL(fileURLWithPath: output))) ?? Data(), status)
    }
}
