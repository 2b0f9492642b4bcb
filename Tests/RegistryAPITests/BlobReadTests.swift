import CLinux
import Glibc
import Metadata
import NIOHTTP1
import OCI
import RegistryTesting
import Storage
import XCTest

/// Spec: "Pulling blobs", "Deleting Blobs", cross-repository mount.
class BlobReadTests: RegistryTestCase {
    func testHeadAndGetHaveExactLengthAndDigest() async throws {
        let blob = Fixtures.bytes(70_000)
        let digest = try await client.pushBlob("a", blob)
        let head = try await client.send(.HEAD, "/v2/a/blobs/\(digest)")
        XCTAssertEqual(head.status, .ok)
        XCTAssertEqual(head.header("Content-Length"), "70000")
        XCTAssertEqual(head.header("Docker-Content-Digest"), digest)
        XCTAssertEqual(head.body, [])
        let get = try await client.send(.GET, "/v2/a/blobs/\(digest)")
        XCTAssertEqual(get.header("Content-Length"), "70000")
        XCTAssertEqual(Fixtures.digest(get.body), digest)
    }

    func testAnswerThatEndsTheConnectionIsSentWhole() async throws {
        // HTTP/1.0 without keep-alive: the connection closes after the answer, and a
        // large sendfile body must be on the wire before it does (it used to be cut).
        let blob = Fixtures.bytes(16 << 20, seed: 9)
        let digest = try await client.pushBlob("big/one", blob)
        for request in [
            "GET /v2/big/one/blobs/\(digest) HTTP/1.0\r\n\r\n",
            "GET /v2/big/one/blobs/\(digest) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ] {
            let (head, bodyBytes) = try await client.sendRawUntilClosed(request)
            XCTAssertTrue(head.hasPrefix("HTTP/1."), head)
            XCTAssertEqual(bodyBytes, blob.count, head)
        }
    }

    func testABlobNoLongerInThePageCacheIsReadFromTheDiskAndSentWhole() async throws {
        // Bodies are copied from the page cache on the event loop, which never waits for
        // the disk: pieces that are not cached are read on the thread pool.
        let blob = Fixtures.bytes(3 << 20, seed: 11)
        let digest = try await client.pushBlob("cold/one", blob)
        let path = try XCTUnwrap(registry.blobs.driver.localFile(for: BlobStore.path(for: Digest(parsing: digest))))
        let file = open(path, O_RDONLY)
        XCTAssertGreaterThanOrEqual(file, 0)
        defer { close(file) }
        // The file is fsynced, so its pages are clean and the kernel drops them on request.
        XCTAssertEqual(posix_fadvise(file, 0, 0, POSIX_FADV_DONTNEED), 0)
        var probe = [UInt8](repeating: 0, count: 4096)
        let cached = registryd_read_cached(file, &probe, probe.count, 1 << 20)
        XCTAssertEqual(cached, -1, "the test's data directory must be on a disk file system (not tmpfs) for pages to leave")
        XCTAssertEqual(errno, EAGAIN)

        let whole = try await client.send(.GET, "/v2/cold/one/blobs/\(digest)")
        XCTAssertEqual(whole.status, .ok)
        XCTAssertEqual(Fixtures.digest(whole.body), digest)
        XCTAssertEqual(posix_fadvise(file, 0, 0, POSIX_FADV_DONTNEED), 0)
        let tail = try await client.send(.GET, "/v2/cold/one/blobs/\(digest)", headers: [("Range", "bytes=1000000-")])
        XCTAssertEqual(tail.status, .partialContent)
        XCTAssertEqual(tail.body, Array(blob[1_000_000...]))
    }

    func testRangeRequestsAnswer206() async throws {
        let blob = Fixtures.bytes(1000)
        let digest = try await client.pushBlob("a", blob)
        let cases: [(String, Range<Int>)] = [
            ("bytes=0-99", 0..<100), ("bytes=900-", 900..<1000), ("bytes=-10", 990..<1000), ("bytes=990-5000", 990..<1000),
        ]
        for (header, expected) in cases {
            let response = try await client.send(.GET, "/v2/a/blobs/\(digest)", headers: [("Range", header)])
            XCTAssertEqual(response.status, .partialContent, header)
            XCTAssertEqual(response.body, Array(blob[expected]), header)
            XCTAssertEqual(response.header("Content-Range"), "bytes \(expected.lowerBound)-\(expected.upperBound - 1)/1000")
        }
    }

    func testUnsatisfiableOrBrokenRangeAnswers416() async throws {
        let digest = try await client.pushBlob("a", Fixtures.bytes(1000))
        for header in ["bytes=1000-", "bytes=5-2", "bytes=abc", "items=0-1", "bytes=0-1,5-6", "bytes=-0"] {
            let response = try await client.send(.GET, "/v2/a/blobs/\(digest)", headers: [("Range", header)])
            XCTAssertEqual(response.status, .rangeNotSatisfiable, header)
            XCTAssertEqual(response.header("Content-Range"), "bytes */1000", header)
            XCTAssertEqual(response.errorCodes, ["RANGE_INVALID"])
        }
    }

    func testMemoryDriverServesRangesToo() async throws {
        let memory = try await TestRegistry.start(driver: .memory, immediateAnswers: Self.immediateAnswers)
        let blob = Fixtures.bytes(3_000_000)
        let digest = try await memory.client.pushBlob("a", blob)
        let whole = try await memory.client.send(.GET, "/v2/a/blobs/\(digest)")
        XCTAssertEqual(whole.body, blob)
        let part = try await memory.client.send(.GET, "/v2/a/blobs/\(digest)", headers: [("Range", "bytes=1048570-1048589")])
        XCTAssertEqual(part.body, Array(blob[1_048_570..<1_048_590]))
        await memory.stop()
    }

    func testBlobIsInvisibleInARepositoryItWasNotPushedTo() async throws {
        // zot CVE-2024-39897: deduplicated bytes must not leak across repositories.
        let digest = try await client.pushBlob("private/a", Fixtures.bytes(100))
        for method in [HTTPMethod.HEAD, .GET] {
            let response = try await client.send(method, "/v2/other/blobs/\(digest)")
            XCTAssertEqual(response.status, .notFound)
        }
    }

    func testDeleteHidesBlobInThatRepositoryOnly() async throws {
        let blob = Fixtures.bytes(100)
        let digest = try await client.pushBlob("a", blob)
        try await client.pushBlob("b", blob)
        let delete = try await client.send(.DELETE, "/v2/a/blobs/\(digest)")
        XCTAssertEqual(delete.status, .accepted)
        let inA = try await client.send(.HEAD, "/v2/a/blobs/\(digest)").status
        XCTAssertEqual(inA, .notFound)
        let inB = try await client.send(.HEAD, "/v2/b/blobs/\(digest)").status
        XCTAssertEqual(inB, .ok)
        let deleteAgain = try await client.send(.DELETE, "/v2/a/blobs/\(digest)").status
        XCTAssertEqual(deleteAgain, .notFound)
    }

    func testMountFromAnotherRepository() async throws {
        let digest = try await client.pushBlob("source", Fixtures.bytes(500))
        let mount = try await client.send(.POST, "/v2/target/blobs/uploads/?mount=\(digest)&from=source")
        XCTAssertEqual(mount.status, .created)
        XCTAssertEqual(mount.header("Location"), "/v2/target/blobs/\(digest)")
        XCTAssertEqual(mount.header("Docker-Content-Digest"), digest)
        let inTarget = try await client.send(.HEAD, "/v2/target/blobs/\(digest)").status
        XCTAssertEqual(inTarget, .ok)
    }

    func testMountOfAbsentBlobFallsBackToAnUploadSession() async throws {
        let digest = Fixtures.digest(Fixtures.bytes(10))
        let mount = try await client.send(.POST, "/v2/target/blobs/uploads/?mount=\(digest)&from=source")
        XCTAssertEqual(mount.status, .accepted)
        XCTAssertNotNil(mount.header("Docker-Upload-UUID"))
    }

    func testMountWithoutFromFindsARepositoryHoldingTheBlob() async throws {
        let digest = try await client.pushBlob("somewhere/else", Fixtures.bytes(500))
        let mount = try await client.send(.POST, "/v2/target/blobs/uploads/?mount=\(digest)")
        XCTAssertEqual(mount.status, .created)
    }

    func testUnknownBlobIs404BlobUnknown() async throws {
        let response = try await client.send(.GET, "/v2/a/blobs/\(Fixtures.digest([1, 2, 3]))")
        XCTAssertEqual(response.status, .notFound)
        XCTAssertEqual(response.errorCodes, ["BLOB_UNKNOWN"])
    }
}

/// The same tests with the immediate path off: every request through NIO's parser.
final class BlobReadTestsWithoutImmediateAnswers: BlobReadTests {
    override class var immediateAnswers: Bool { false }

    func testEveryReadTakesTheFullPath() async throws {
        try await assertEveryReadTakesTheFullPath()
    }
}

final class BlobReadTestsOnPostgres: BlobReadTests {
    override class var metadataKind: TestRegistry.MetadataKind { .postgres }

    func testTheMetadataIsOnPostgres() {
        XCTAssertTrue(registry.metadata is PostgresMetadataStore)
    }
}
