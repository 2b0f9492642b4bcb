import OCI
import XCTest

/// The distribution spec's grammars for names, tags, digests, and our upload ids.
final class GrammarTests: XCTestCase {
    func testValidRepositoryNames() throws {
        for name in ["a", "library/alpine", "test/this", "a.b_c__d-e---f/g0", "x/y/z/w", String(repeating: "a", count: 255)] {
            XCTAssertNoThrow(try RepositoryName(parsing: name), name)
        }
        XCTAssertEqual(try RepositoryName(parsing: "team/app/x").namespace, "team")
    }

    func testInvalidRepositoryNames() {
        for name in [
            "", "A", "a/", "/a", "a//b", "a/../b", "..", "a___b", "a.", "-a", "a_", "a b", "a%2fb", "a/.b",
            String(repeating: "a", count: 256), "é",
        ] {
            XCTAssertThrowsError(try RepositoryName(parsing: name), name)
        }
    }

    func testTags() {
        for tag in ["latest", "v1.0", "_x", "A-b.c_d", "mytag1.8", String(repeating: "t", count: 128)] {
            XCTAssertNoThrow(try Tag(parsing: tag), tag)
        }
        for tag in ["", ".x", "-x", "a/b", "a:b", String(repeating: "t", count: 129), "ä"] {
            XCTAssertThrowsError(try Tag(parsing: tag), tag)
        }
    }

    func testDigests() throws {
        let sha256 = "sha256:" + String(repeating: "ab", count: 32)
        let sha512 = "sha512:" + String(repeating: "cd", count: 64)
        XCTAssertEqual(try Digest(parsing: sha256).algorithm, .sha256)
        XCTAssertEqual(try Digest(parsing: sha512).algorithm, .sha512)
        XCTAssertEqual(try Digest(parsing: sha256).description, sha256)
        for bad in [
            "", "sha256", "sha256:", ":abc", "sha256:" + String(repeating: "A", count: 64), "sha256:" + String(repeating: "a", count: 65),
            "sha256:../../../../etc/passwd", "sha512:" + String(repeating: "a", count: 64),
        ] {
            XCTAssertThrowsError(try Digest(parsing: bad), bad) { XCTAssertEqual($0 as? DigestError, .malformed, bad) }
        }
        XCTAssertThrowsError(try Digest(parsing: "blake3:abc")) { XCTAssertEqual($0 as? DigestError, .unsupportedAlgorithm("blake3")) }
    }

    func testManifestReferenceIsTagOrDigest() {
        XCTAssertEqual(ManifestReference(parsing: "v1")?.description, "v1")
        let digest = "sha256:" + String(repeating: "0", count: 64)
        guard case .digest = ManifestReference(parsing: digest) else { return XCTFail("expected a digest") }
        XCTAssertNil(ManifestReference(parsing: "sha256:xyz"))
        XCTAssertNil(ManifestReference(parsing: "-bad"))
    }

    func testUploadIDs() {
        XCTAssertNoThrow(try UploadID(parsing: UploadID.generate().value))
        for bad in ["", "..", "a/b", "a.b", String(repeating: "a", count: 129), "a\0b"] {
            XCTAssertThrowsError(try UploadID(parsing: bad), bad)
        }
    }
}
