import OCI
import XCTest

/// SHA-256/512 through libcrypto against the FIPS 180-2 example vectors, and HMAC-SHA256
/// (built on them) against RFC 4231's.
final class HashingTests: XCTestCase {
    func testSHA256OfABC() {
        XCTAssertEqual(Digest.of(Array("abc".utf8)).description, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testSHA512OfABC() {
        XCTAssertEqual(
            Digest.of(Array("abc".utf8), algorithm: .sha512).description,
            "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        )
    }

    /// Every example of FIPS 180-2 (one block, several blocks, a million "a"), and the
    /// empty message.
    func testEveryFIPSExampleVector() {
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        let sha256: [([UInt8], String)] = [
            ([], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            (Array("abc".utf8), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8),
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
            ),
            (million, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
        ]
        let sha512: [([UInt8], String)] = [
            (
                [],
                "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
            ),
            (
                Array("abc".utf8),
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
            ),
            (
                Array(
                    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu".utf8),
                "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909"
            ),
            (
                million,
                "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973ebde0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b"
            ),
        ]
        for (message, expected) in sha256 {
            XCTAssertEqual(Digest.of(message).description, "sha256:" + expected, "\(message.count) bytes")
            // The same through the streaming hasher uploads use, in uneven pieces.
            let hasher = ContentHasher(algorithm: .sha256)
            var offset = 0
            while offset < message.count {
                let end = min(message.count, offset + 1 + offset % 4093)
                hasher.update(Array(message[offset..<end]))
                offset = end
            }
            XCTAssertEqual(hasher.finalize().description, "sha256:" + expected)
        }
        for (message, expected) in sha512 {
            XCTAssertEqual(Digest.of(message, algorithm: .sha512).description, "sha512:" + expected, "\(message.count) bytes")
        }
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

    /// HMAC-SHA256 against RFC 4231's test cases 1, 2, 6 and 7 (a short key, a text key,
    /// and a key longer than a block, which is hashed first), and a key of exactly one
    /// block (Python's `hmac` module).
    func testHMACSHA256MatchesRFC4231() {
        let cases: [(key: [UInt8], message: String, expected: String)] = [
            ([UInt8](repeating: 0x0b, count: 20), "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (Array("Jefe".utf8), "what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            (
                [UInt8](repeating: 0xaa, count: 131), "Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
            ),
            (
                [UInt8](repeating: 0xaa, count: 131),
                "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"
            ),
            (
                [UInt8](repeating: UInt8(ascii: "k"), count: 64), "exactly one block of key",
                "baa93ea4ccc7062ed6870c5e7937dbd35ad7791df4e29df9addeb429ff491acf"
            ),
        ]
        for (key, message, expected) in cases {
            XCTAssertEqual(
                Hex.encode(HMACSHA256.authenticationCode(for: Array(message.utf8), key: key)), expected, "key of \(key.count) bytes")
        }
    }
}
