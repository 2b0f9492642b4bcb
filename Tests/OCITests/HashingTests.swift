import OCI
import XCTest

/// SHA-256/512 through libcrypto against the FIPS 180-2 example vectors.
final class HashingTests: XCTestCase {
    func testSHA256OfABC() {
        XCTAssertEqual(Digest.of(Array("abc".utf8)).description, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testSHA512OfABC() {
        XCTAssertEqual(Digest.of(Array("abc".utf8), algorithm: .sha512).description,
                       "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
    }

    func testIncrementalHashingEqualsOneShotAndCopyIsIndependent() {
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let hasher = ContentHasher(algorithm: .sha256)
        hasher.update(Array(bytes[0..<12345]))
        let snapshot = hasher.copy()
        hasher.update(Array(bytes[12345...]))
        XCTAssertEqual(hasher.count, 100_000)
        XCTAssertEqual(hasher.finalize(), Digest.of(bytes))
        XCTAssertEqual(snapshot.finalize(), Digest.of(Array(bytes[0..<12345])))
    }
}
