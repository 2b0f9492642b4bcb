import Metadata
import NIOHTTP1
import OCI
import RegistryTesting
import XCTest

/// Spec: "Pushing blobs" — every client pattern, and every way to get it wrong.
class BlobUploadTests: RegistryTestCase {
    func testMonolithicPostWithDigestCreatesBlob() async throws {
        let blob = Fixtures.bytes(10_000)
        let digest = Fixtures.digest(blob)
        let response = try await client.send(.POST, "/v2/a/b/blobs/uploads/?digest=\(digest)", body: .bytes(blob))
        XCTAssertEqual(response.status, .created)
        XCTAssertEqual(response.header("Location"), "/v2/a/b/blobs/\(digest)")
        XCTAssertEqual(response.header("Docker-Content-Digest"), digest)
        let get = try await client.send(.GET, "/v2/a/b/blobs/\(digest)")
        XCTAssertEqual(get.status, .ok)
        XCTAssertEqual(get.body, blob)
    }

    func testEmptyBlobCanBePushedWithoutABody() async throws {
        let empty = Fixtures.digest([])
        let monolithic = try await client.send(.POST, "/v2/a/blobs/uploads/?digest=\(empty)")
        XCTAssertEqual(monolithic.status, .created, monolithic.text)
        let location = try await client.startUpload("b")
        let put = try await client.send(.PUT, "\(location)?digest=\(empty)")
        XCTAssertEqual(put.status, .created, put.text)
        let get = try await client.send(.GET, "/v2/b/blobs/\(empty)")
        XCTAssertEqual(get.status, .ok)
        XCTAssertEqual(get.header("Content-Length"), "0")
    }

    func testPostStartsSessionWithLocationRangeAndUUID() async throws {
        let response = try await client.send(.POST, "/v2/a/blobs/uploads/")
        XCTAssertEqual(response.status, .accepted)
        let location = try XCTUnwrap(response.header("Location"))
        let uuid = try XCTUnwrap(response.header("Docker-Upload-UUID"))
        XCTAssertEqual(location, "/v2/a/blobs/uploads/\(uuid)")
        XCTAssertEqual(response.header("Range"), "0-0")
    }

    func testPostThenPutWithWholeBodyCreatesBlob() async throws {
        let blob = Fixtures.bytes(5000)
        let location = try await client.startUpload("a")
        let put = try await client.send(.PUT, "\(location)?digest=\(Fixtures.digest(blob))", body: .bytes(blob))
        XCTAssertEqual(put.status, .created)
        let head = try await client.send(.HEAD, "/v2/a/blobs/\(Fixtures.digest(blob))")
        XCTAssertEqual(head.status, .ok)
        XCTAssertEqual(head.header("Content-Length"), "5000")
    }

    func testChunkedPatchesWithContentRangeThenEmptyPut() async throws {
        let blob = Fixtures.bytes(300_000)
        let location = try await client.startUpload("a")
        var offset = 0
        for size in [100_000, 150_000, 50_000] {
            let chunk = Array(blob[offset..<offset + size])
            let patch = try await client.send(
                .PATCH, location,
                headers: [("Content-Range", "\(offset)-\(offset + size - 1)"), ("Content-Type", "application/octet-stream")],
                body: .bytes(chunk))
            XCTAssertEqual(patch.status, .accepted, patch.text)
            offset += size
            XCTAssertEqual(patch.header("Range"), "0-\(offset - 1)")
        }
        let put = try await client.send(.PUT, "\(location)?digest=\(Fixtures.digest(blob))")
        XCTAssertEqual(put.status, .created, put.text)
        let get = try await client.send(.GET, "/v2/a/blobs/\(Fixtures.digest(blob))")
        XCTAssertEqual(get.body, blob)
    }

    func testStreamedPatchWithoutContentLengthOrRange() async throws {
        // podman and docker send the whole blob as one chunked PATCH with no length.
        let blob = Fixtures.bytes(2_500_000)
        let location = try await client.startUpload("a")
        let parts = stride(from: 0, to: blob.count, by: 64 * 1024).map { Array(blob[$0..<min($0 + 64 * 1024, blob.count)]) }
        let patch = try await client.send(.PATCH, location, body: .chunked(parts))
        XCTAssertEqual(patch.status, .accepted, patch.text)
        XCTAssertEqual(patch.header("Range"), "0-\(blob.count - 1)")
        let put = try await client.send(.PUT, "\(location)?digest=\(Fixtures.digest(blob))")
        XCTAssertEqual(put.status, .created, put.text)
        let get = try await client.send(.GET, "/v2/a/blobs/\(Fixtures.digest(blob))")
        XCTAssertEqual(get.body.count, blob.count)
        XCTAssertEqual(get.body, blob)
    }

    func testFinalPutMayCarryTheLastChunk() async throws {
        let blob = Fixtures.bytes(2000)
        let location = try await client.startUpload("a")
        _ = try await client.send(.PATCH, location, headers: [("Content-Range", "0-999")], body: .bytes(Array(blob[0..<1000])))
        let put = try await client.send(
            .PUT, "\(location)?digest=\(Fixtures.digest(blob))", headers: [("Content-Range", "1000-1999")],
            body: .bytes(Array(blob[1000...])))
        XCTAssertEqual(put.status, .created, put.text)
    }

    func testOutOfOrderChunkIsRejectedWith416() async throws {
        let location = try await client.startUpload("a")
        let patch = try await client.send(.PATCH, location, headers: [("Content-Range", "10-19")], body: .bytes(Fixtures.bytes(10)))
        XCTAssertEqual(patch.status, .rangeNotSatisfiable)
        XCTAssertEqual(patch.header("Range"), "0-0")
        let status = try await client.send(.GET, location)
        XCTAssertEqual(status.header("Range"), "0-0", "a refused chunk must not change the upload")
    }

    func testOverlappingChunkIsRejectedWith416() async throws {
        let location = try await client.startUpload("a")
        _ = try await client.send(.PATCH, location, headers: [("Content-Range", "0-9")], body: .bytes(Fixtures.bytes(10)))
        let overlap = try await client.send(.PATCH, location, headers: [("Content-Range", "5-14")], body: .bytes(Fixtures.bytes(10)))
        XCTAssertEqual(overlap.status, .rangeNotSatisfiable)
        XCTAssertEqual(overlap.header("Range"), "0-9")
    }

    func testContentLengthDisagreeingWithContentRangeIsRejected() async throws {
        let location = try await client.startUpload("a")
        let patch = try await client.send(.PATCH, location, headers: [("Content-Range", "0-99")], body: .bytes(Fixtures.bytes(10)))
        XCTAssertEqual(patch.status, .badRequest)
        let status = try await client.send(.GET, location)
        XCTAssertEqual(status.header("Range"), "0-0")
    }

    func testMalformedContentRangeIsRejectedWith416() async throws {
        let location = try await client.startUpload("a")
        for header in ["abc", "5-2", "-5", "0-", "99999999999999999999-1"] {
            let patch = try await client.send(.PATCH, location, headers: [("Content-Range", header)], body: .bytes(Fixtures.bytes(4)))
            XCTAssertEqual(patch.status, .rangeNotSatisfiable, header)
            XCTAssertEqual(patch.errorCodes, ["RANGE_INVALID"])
        }
    }

    func testUploadStatusReports204WithRange() async throws {
        let location = try await client.startUpload("a")
        _ = try await client.send(.PATCH, location, body: .bytes(Fixtures.bytes(1234)))
        let status = try await client.send(.GET, location)
        XCTAssertEqual(status.status, .noContent)
        XCTAssertEqual(status.header("Range"), "0-1233")
        XCTAssertEqual(status.header("Location"), location)
    }

    func testWrongDigestIsRejectedAndNothingStored() async throws {
        let blob = Fixtures.bytes(1000)
        let wrong = Fixtures.digest(Fixtures.bytes(1000, seed: 99))
        let location = try await client.startUpload("a")
        let put = try await client.send(.PUT, "\(location)?digest=\(wrong)", body: .bytes(blob))
        XCTAssertEqual(put.status, .badRequest)
        XCTAssertEqual(put.errorCodes, ["DIGEST_INVALID"])
        for digest in [wrong, Fixtures.digest(blob)] {
            let head = try await client.send(.HEAD, "/v2/a/blobs/\(digest)")
            XCTAssertEqual(head.status, .notFound)
        }
        let storedUnderRealDigest = try await registry.blobs.size(of: Digest(parsing: Fixtures.digest(blob)))
        XCTAssertNil(storedUnderRealDigest, "no bytes under the real digest")
        let storedUnderWrongDigest = try await registry.blobs.size(of: Digest(parsing: wrong))
        XCTAssertNil(storedUnderWrongDigest)
        let uploads = try await registry.blobs.driver.list(under: .init(["uploads"]))
        XCTAssertEqual(uploads, [], "the temporary object is gone")
    }

    func testMonolithicPostWithWrongDigestStoresNothing() async throws {
        let blob = Fixtures.bytes(100)
        let wrong = Fixtures.digest(Fixtures.bytes(100, seed: 7))
        let response = try await client.send(.POST, "/v2/a/blobs/uploads/?digest=\(wrong)", body: .bytes(blob))
        XCTAssertEqual(response.status, .badRequest)
        XCTAssertEqual(response.errorCodes, ["DIGEST_INVALID"])
        await assertFalse(try await registry.metadata.hasBlobRow(Digest(parsing: wrong)), "no row for a digest that did not verify")
        await assertFalse(try await registry.metadata.hasBlobRow(Digest(parsing: Fixtures.digest(blob))), "nor for the bytes that came")
    }

    func testPutWithoutDigestIsRejected() async throws {
        let location = try await client.startUpload("a")
        let put = try await client.send(.PUT, location, body: .bytes(Fixtures.bytes(10)))
        XCTAssertEqual(put.status, .badRequest)
        XCTAssertEqual(put.errorCodes, ["DIGEST_INVALID"])
    }

    func testDeleteCancelsUpload() async throws {
        let location = try await client.startUpload("a")
        _ = try await client.send(.PATCH, location, body: .bytes(Fixtures.bytes(100)))
        let delete = try await client.send(.DELETE, location)
        XCTAssertEqual(delete.status, .noContent)
        let status = try await client.send(.GET, location)
        XCTAssertEqual(status.status, .notFound)
        XCTAssertEqual(status.errorCodes, ["BLOB_UPLOAD_UNKNOWN"])
    }

    func testSessionOfOneRepositoryIsUnknownInAnother() async throws {
        let location = try await client.startUpload("a")
        let id = String(location.split(separator: "/").last!)
        for method in [HTTPMethod.GET, .PATCH, .PUT, .DELETE] {
            let response = try await client.send(
                method, "/v2/other/blobs/uploads/\(id)?digest=\(Fixtures.digest([1]))", body: method == .PATCH ? .bytes([1]) : .none)
            XCTAssertEqual(response.status, .notFound, "\(method)")
            XCTAssertEqual(response.errorCodes, ["BLOB_UPLOAD_UNKNOWN"])
        }
        let status = try await client.send(.GET, location)
        XCTAssertEqual(status.status, .noContent, "the session is untouched")
    }

    func testSHA512UploadWithDigestAlgorithmParameter() async throws {
        let blob = Fixtures.bytes(4096)
        let digest = Fixtures.digest(blob, .sha512)
        let location = try await client.startUpload("a", query: "?digest-algorithm=sha512")
        _ = try await client.send(.PATCH, location, body: .bytes(blob))
        let put = try await client.send(.PUT, "\(location)?digest=\(digest)")
        XCTAssertEqual(put.status, .created, put.text)
        XCTAssertEqual(put.header("Docker-Content-Digest"), digest)
        let get = try await client.send(.GET, "/v2/a/blobs/\(digest)")
        XCTAssertEqual(get.body, blob)
    }

    func testSHA512DigestOnSHA256SessionIsVerifiedToo() async throws {
        let blob = Fixtures.bytes(4096)
        let location = try await client.startUpload("a")
        _ = try await client.send(.PATCH, location, body: .bytes(blob))
        let put = try await client.send(.PUT, "\(location)?digest=\(Fixtures.digest(blob, .sha512))")
        XCTAssertEqual(put.status, .created, put.text)
    }

    func testAWrongSHA512DigestIsRefusedAndNothingIsStored() async throws {
        let blob = Fixtures.bytes(4096)
        let other = Fixtures.digest(Fixtures.bytes(4096, seed: 2), .sha512)
        let location = try await client.startUpload("a", query: "?digest-algorithm=sha512")
        _ = try await client.send(.PATCH, location, body: .bytes(blob))
        let put = try await client.send(.PUT, "\(location)?digest=\(other)")
        XCTAssertEqual(put.status, .badRequest)
        XCTAssertEqual(put.errorCodes, ["DIGEST_INVALID"])
        for digest in [other, Fixtures.digest(blob, .sha512)] {
            let head = try await client.send(.HEAD, "/v2/a/blobs/\(digest)")
            XCTAssertEqual(head.status, .notFound, digest)
        }
        let monolithic = try await client.send(.POST, "/v2/a/blobs/uploads/?digest=\(other)", body: .bytes(blob))
        XCTAssertEqual(monolithic.errorCodes, ["DIGEST_INVALID"])
    }

    func testUnknownDigestAlgorithmIsUnsupported() async throws {
        let response = try await client.send(.POST, "/v2/a/blobs/uploads/?digest-algorithm=md5")
        XCTAssertEqual(response.status, .badRequest)
        XCTAssertEqual(response.errorCodes, ["UNSUPPORTED"])
    }

    func testExpectContinueIsAnswered() async throws {
        // The client holds the body back until it hears 100 Continue (the raw exchange
        // below sends nothing more before reading it).
        let blob = Fixtures.bytes(100)
        let head =
            "POST /v2/a/blobs/uploads/?digest=\(Fixtures.digest(blob)) HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n"
        let interim = try await client.sendRaw(head)
        XCTAssertTrue(interim.hasPrefix("HTTP/1.1 100 Continue\r\n"), interim)
        let response = try await client.send(
            .POST, "/v2/a/blobs/uploads/?digest=\(Fixtures.digest(blob))", headers: [("Expect", "100-continue")], body: .bytes(blob))
        XCTAssertEqual(response.status, .created)
    }

    func testConcurrentPatchesToOneSessionDoNotInterleave() async throws {
        let location = try await client.startUpload("a")
        let client = self.client
        // Different bytes in each PATCH, sent slowly, so that the two overlap and an
        // interleaving would show in the stored blob.
        let firstParts = (0..<20).map { Fixtures.bytes(64 * 1024, seed: UInt64($0)) }
        let secondParts = (0..<20).map { Fixtures.bytes(64 * 1024, seed: UInt64(100 + $0)) }
        async let first = client.send(.PATCH, location, body: .chunked(firstParts))
        async let second = client.send(.PATCH, location, body: .chunked(secondParts))
        let answers = try await [first, second]
        let accepted = answers.filter { $0.status == .accepted }
        let refused = answers.filter { $0.status != .accepted }
        XCTAssertGreaterThanOrEqual(accepted.count, 1)
        for loser in refused {
            XCTAssertEqual(loser.status, .badRequest)
            XCTAssertEqual(loser.errorCodes, ["BLOB_UPLOAD_INVALID"], "the other PATCH is told the session is busy")
        }
        let finished = try await client.send(.GET, location)
        XCTAssertEqual(finished.header("Range"), "0-\(accepted.count * 20 * 64 * 1024 - 1)", "each accepted PATCH appended whole")
        // One body accepted (the usual case, as they overlap): the stored bytes are exactly
        // that body, not a mix of both.
        if accepted.count == 1, refused.count == 1 {
            let winner = answers[0].status == .accepted ? firstParts : secondParts
            let put = try await client.send(.PUT, "\(location)?digest=\(Fixtures.digest(winner.flatMap { $0 }))")
            XCTAssertEqual(put.status, .created, "the stored bytes are the accepted body, not interleaved: \(put.text)")
        }
    }
}

final class BlobUploadTestsOnPostgres: BlobUploadTests {
    override class var metadataKind: TestRegistry.MetadataKind { .postgres }

    func testTheMetadataIsOnPostgres() {
        XCTAssertTrue(registry.metadata is PostgresMetadataStore)
    }
}
